//go:build linux

package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthproject/berth/agent"
	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/nodecheck"
	"github.com/berthproject/berth/agent/worker"
	"github.com/berthproject/berth/cli"
	"github.com/berthproject/berth/controlplane"
	"github.com/berthproject/berth/controlplane/audit"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/dispatcher"
	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/nodehealth"
	"github.com/berthproject/berth/controlplane/orchestrator"
	"github.com/berthproject/berth/controlplane/ratelimit"
	"github.com/berthproject/berth/controlplane/snapshot"
	"github.com/berthproject/berth/internal/gossip"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

func defaultDataDir(sub string) string {
	if os.Geteuid() == 0 {
		return filepath.Join("/var/lib/berth", sub)
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".berth", sub)
}

type serverFlags struct {
	dataDir, listen, httpListen, advertise, etcd, containerRange, networkRange, metricsAddr string
	kekFile, unlockKey, auditLog                                                            string
	auditRetention                                                                          time.Duration
	etcdTLS                                                                                 etcd.ClientTLS
	nodeDownGrace, heartbeat, leaderLease, certLifetime, notReadyGrace                      time.Duration
	profiles                                                                                bool
	massLoss                                                                                controlplane.MassLossGuard
	gossip                                                                                  controlplane.GossipConfig
	limits                                                                                  ratelimit.Config
	snapshots                                                                               controlplane.SnapshotConfig
	log                                                                                     logFlags
}

func (f *serverFlags) add(cmd *cobra.Command, dataDir string) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", dataDir, "where the server keeps its state (the embedded etcd's data)")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:4242", "address agents and clients connect to")
	cmd.Flags().StringVar(&f.httpListen, "http-listen", "", "address to serve the HTTP/JSON API and its OpenAPI document on, over HTTPS with the server's certificate (default: not served)")
	cmd.Flags().StringVar(&f.advertise, "advertise", "", "address written into the admin config and join command (default: the listen address)")
	cmd.Flags().StringVar(&f.etcd, "etcd-endpoints", "", "comma-separated endpoints of an external etcd cluster, instead of the embedded one: https://HOST:PORT (plain http:// only on loopback); several servers on one cluster elect a leader")
	cmd.Flags().StringVar(&f.etcdTLS.CAFile, "etcd-cacert", "", "PEM file of the CA that signs the external etcd's serving certificates (default: the system's roots); with https:// --etcd-endpoints")
	cmd.Flags().StringVar(&f.etcdTLS.CertFile, "etcd-cert", "", "PEM file of the client certificate the server shows the external etcd (for etcd's --client-cert-auth); with --etcd-key")
	cmd.Flags().StringVar(&f.etcdTLS.KeyFile, "etcd-key", "", "PEM file of the key of --etcd-cert")
	cmd.Flags().DurationVar(&f.leaderLease, "leader-lease", 0, "how long a leader that died keeps its leadership before another server takes over (whole seconds; etcd grants no less than 1.5 of its election timeouts); default 2s on an external etcd, 10s on the embedded one, where no other server contends")
	cmd.Flags().StringVar(&f.kekFile, "kek-file", "", "file of the key-encryption key that seals the cluster's secrets in etcd, made when the cluster is new; every server of the cluster needs a copy (default <data-dir>/key-encryption-key)")
	cmd.Flags().StringVar(&f.unlockKey, "unlock-key", "", "the key-encryption key itself, base64 (berth server key prints it), instead of --kek-file: the key is then never on this machine's disk (or $"+controlplane.EnvUnlockKey+")")
	cmd.Flags().StringVar(&f.containerRange, "container-range", "10.210.0.0/16", "address range nodes' container subnets (/24 each) come from")
	cmd.Flags().StringVar(&f.networkRange, "network-range", "10.128.0.0/12", "address range networks' subnets (/24 each, unless one is given) come from; apart from --container-range")
	cmd.Flags().StringVar(&f.auditLog, "audit-log", "", "also write every call that changes something to this file, one JSON object a line (appended, mode 0600); \"-\" is standard error (default: the audit log is kept in the cluster only; berth audit reads it)")
	cmd.Flags().DurationVar(&f.auditRetention, "audit-retention", audit.DefaultRetention, "how long the cluster keeps audit records (at least 1h); the leader removes older ones every hour")
	f.log.add(cmd)
	cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", defaultServerMetricsAddr, "host:port to serve Prometheus metrics on, at /metrics, and the health checks at /healthz and /readyz (\"\" turns them off)")
	cmd.Flags().BoolVar(&f.profiles, "profiles", false, "also serve Go's runtime profiles (CPU, heap) at /debug/pprof/ on --metrics-addr, which must be a loopback address")
	cmd.Flags().DurationVar(&f.nodeDownGrace, "node-down-grace", nodehealth.DefaultGrace, "how long a node may be out of contact before it is down and its tasks run elsewhere (gossip declares a dead node down sooner)")
	cmd.Flags().Float64Var(&f.massLoss.Share, "mass-loss-share", nodehealth.DefaultGuardShare, "when more than this share of the nodes lose contact at once, the control plane assumes its own network failed: they stay unreachable, none goes down and no task is replaced until contact returns or `berth node down` (0 turns the guard off)")
	cmd.Flags().IntVar(&f.massLoss.MinNodes, "mass-loss-min-nodes", nodehealth.DefaultGuardMinNodes, "the fewest nodes a cluster has for --mass-loss-share to apply")
	cmd.Flags().DurationVar(&f.heartbeat, "heartbeat-period", dispatcher.DefaultHeartbeatPeriod, "how often agents report in; a session silent for 3 periods is lost")
	cmd.Flags().DurationVar(&f.notReadyGrace, "not-ready-grace", orchestrator.DefaultNotReadyGrace, "how long a node may stay not ready (its agent reports a failing condition: runtime, network, disk) before its replicated tasks move to other nodes")
	cmd.Flags().StringVar(&f.gossip.Addr, "gossip-addr", "", "host:port for gossip among servers and agents, UDP and TCP (default: an ephemeral port on the advertised host)")
	cmd.Flags().DurationVar(&f.gossip.ProbeInterval, "gossip-probe-interval", gossip.DefaultProbeInterval, "how often each gossip member probes another")
	cmd.Flags().DurationVar(&f.gossip.ProbeTimeout, "gossip-probe-timeout", gossip.DefaultProbeTimeout, "how long a gossip probe waits for its answer before asking other members to try")
	cmd.Flags().IntVar(&f.gossip.SuspicionMult, "gossip-suspicion-mult", gossip.DefaultSuspicionMult, "how many probe intervals a suspected member has to answer before it is declared dead")
	// Hidden: a short lifetime lets tests watch renewals happen.
	cmd.Flags().DurationVar(&f.certLifetime, "cert-lifetime", ca.DefaultLeafLifetime, "how long the certificates the cluster CA issues last; holders renew at two thirds")
	_ = cmd.Flags().MarkHidden("cert-lifetime")
	cmd.Flags().Float64Var(&f.limits.JoinRate, "join-rate", ratelimit.DefaultJoinRate, "joins a second allowed from one address (negative: no limit)")
	cmd.Flags().IntVar(&f.limits.JoinBurst, "join-burst", ratelimit.DefaultJoinBurst, "joins allowed at once from one address")
	cmd.Flags().Float64Var(&f.limits.CallRate, "call-rate", ratelimit.DefaultCallRate, "API calls a second allowed from one user or token; nodes and servers are not limited (negative: no limit)")
	cmd.Flags().IntVar(&f.limits.CallBurst, "call-burst", ratelimit.DefaultCallBurst, "API calls allowed at once from one user or token")
	cmd.Flags().DurationVar(&f.snapshots.Interval, "snapshot-interval", 0, "how often the leader writes a snapshot of the cluster into <data-dir>/"+snapshot.DirName+" (0: never); without --snapshot-passphrase-file they do not carry the key-encryption key")
	cmd.Flags().IntVar(&f.snapshots.Keep, "snapshot-keep", snapshot.DefaultKeep, "how many of the newest periodic snapshots to keep (0 keeps the default)")
	cmd.Flags().StringVar(&f.snapshots.PassphraseFile, "snapshot-passphrase-file", "", "file holding a passphrase that seals the key-encryption key into each periodic snapshot (default: the snapshots carry no key)")
	for _, name := range []string{"join-rate", "join-burst", "call-rate", "call-burst"} {
		cmd.Flags().MarkHidden(name)
	}
}

func (f *serverFlags) config(cmd *cobra.Command, log *slog.Logger) controlplane.Config {
	var endpoints []string
	if f.etcd != "" {
		endpoints = strings.Split(f.etcd, ",")
	}
	return controlplane.Config{
		DataDir:         f.dataDir,
		Listen:          f.listen,
		HTTPListen:      f.httpListen,
		Advertise:       f.advertise,
		EtcdEndpoints:   endpoints,
		EtcdTLS:         f.etcdTLS,
		ConfigPath:      cli.ConfigPath(cmd),
		KEKFile:         f.kekFile,
		UnlockKey:       cmp.Or(f.unlockKey, os.Getenv(controlplane.EnvUnlockKey)),
		ContainerRange:  f.containerRange,
		NetworkRange:    f.networkRange,
		NodeDownGrace:   f.nodeDownGrace,
		MassLoss:        f.massLoss.Flagged(),
		HeartbeatPeriod: f.heartbeat,
		NotReadyGrace:   f.notReadyGrace,
		Gossip:          f.gossip,
		LeaderLease:     f.leaderLease,
		AuditLog:        f.auditLog,
		AuditRetention:  f.auditRetention,
		CertLifetime:    f.certLifetime,
		RateLimits:      f.limits,
		Snapshots:       f.snapshots,
		Log:             log,
	}
}

// serverRun is a server the flags started, with what runs beside it.
type serverRun struct {
	srv   *controlplane.Server
	token string
	log   *slog.Logger
	// registry holds the process's metrics, served on --metrics-addr.
	registry *prometheus.Registry
	// health holds the process's checks, served on --metrics-addr.
	health  *metrics.Health
	metrics *metricsServer
}

// start runs a server as the flags say, with its metrics endpoint, and
// returns it with a join token.
func (f *serverFlags) start(cmd *cobra.Command) (*serverRun, error) {
	log, err := f.log.logger(os.Stderr)
	if err != nil {
		return nil, err
	}
	r := &serverRun{log: log, registry: metrics.NewRegistry(), health: metrics.NewHealth()}
	cfg := f.config(cmd, log)
	cfg.Metrics, cfg.Health = r.registry, r.health
	if r.srv, err = controlplane.Start(cmd.Context(), cfg); err != nil {
		return nil, err
	}
	if r.token, err = r.srv.JoinToken(cmd.Context()); err != nil {
		r.srv.Stop()
		return nil, err
	}
	if r.metrics, err = serveMetricsAndProfiles(cmd, f.metricsAddr, r.registry, r.health, f.profiles, log); err != nil {
		r.srv.Stop()
		return nil, err
	}
	return r, nil
}

func (r *serverRun) stop() {
	r.metrics.Close()
	r.srv.Stop()
}

func newServerCommand() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane",
		Long: `Run a Berth control plane server. State lives in an embedded etcd under
--data-dir, or in an external etcd cluster with --etcd-endpoints. On first
start the server makes the cluster CA, writes the admin client config
(--config, default ~/.berth/config) and prints the command agents join with.`,
		Example: `  berth server --listen 10.0.0.1:4242
  berth server --etcd-endpoints https://10.0.0.5:2379,https://10.0.0.6:2379 \
    --etcd-cacert etcd-ca.pem --etcd-cert berth.pem --etcd-key berth-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			run, err := f.start(cmd)
			if err != nil {
				return err
			}
			defer run.stop()
			srv, token := run.srv, run.token
			fmt.Fprintf(cmd.OutOrStdout(), "Berth server listening on %s\nAdmin config written to %s\nJoin a node with:\n  berth agent --join %s --token %s\n",
				srv.Addr(), cli.ConfigPath(cmd), srv.AdminConfig().Server, token)
			if addr := srv.HTTPAddr(); addr != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "HTTP/JSON API on https://%s (OpenAPI document at /openapi.json; berth token create NAME makes a bearer token)\n", addr)
			}
			select {
			case <-ctx.Done():
				return nil
			case err := <-srv.Err():
				return err
			case err := <-run.metrics.Err():
				return err
			}
		},
	}
	f.add(cmd, defaultDataDir("server"))
	cmd.AddCommand(newServerKeyCommand())
	return cmd
}

type agentFlags struct {
	join, token, name, dataDir, listen, gossip, runtime, namespace string
	buildkitAddr, metricsAddr, containerdAddr                      string
	log                                                            logFlags
	labels                                                         []string
	cpus                                                           float64
	memory                                                         int64
	contentAddr                                                    string
	imageGCHigh, imageGCLow                                        int
	diskFloor, inodeFloor                                          string
	fakeStartLatency                                               time.Duration
	fakeFailureRate                                                float64
	maxStarts, maxPulls                                            int
	cleanup                                                        cleanupFlags
}

func (f *agentFlags) add(cmd *cobra.Command, withJoin bool) {
	if withJoin {
		cmd.Flags().StringVar(&f.join, "join", "", "address of a control plane server (host:port), or of several, comma-separated: the agent finds the leader and learns the other servers")
		cmd.Flags().StringVar(&f.token, "token", "", "join token (berth join-token prints it); needed the first time only")
		cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "where the agent keeps its credentials, logs and network state (default /var/lib/berth/agent-NAME)")
		cmd.Flags().StringVar(&f.listen, "listen", "", "address of the node's own endpoint (default: an ephemeral port on the address that reaches the server)")
		cmd.Flags().StringVar(&f.gossip, "gossip-addr", "", "host:port of the node's gossip member, UDP and TCP (default: the address that reaches the server, on an ephemeral port kept across restarts)")
		cmd.Flags().StringVar(&f.contentAddr, "content-addr", "", "host:port where the node serves its images to other nodes over mTLS (default: the --listen host, on an ephemeral port kept across restarts)")
		f.log.add(cmd)
		cmd.Flags().StringVar(&f.metricsAddr, "metrics-addr", "", "host:port to serve the node's Prometheus metrics on, at /metrics, and its health checks at /healthz and /readyz (default: not served)")
		f.cleanup.add(cmd)
	}
	cmd.Flags().StringVar(&f.name, "name", "", "node name, unique in the cluster (default: the hostname)")
	cmd.Flags().StringArrayVar(&f.labels, "label", nil, "node label KEY=VALUE (repeatable), for placement constraints")
	cmd.Flags().Float64Var(&f.cpus, "cpus", 0, "CPU capacity offered to tasks, in cores (default: all)")
	cmd.Flags().Int64Var(&f.memory, "memory", 0, "memory capacity offered to tasks, in bytes (default: all)")
	cmd.Flags().StringVar(&f.runtime, "runtime", "containerd", "container runtime: containerd, or fake for scale tests (runs nothing)")
	cmd.Flags().DurationVar(&f.fakeStartLatency, "fake-start-latency", 0, "with --runtime fake: how long each simulated container start takes")
	cmd.Flags().Float64Var(&f.fakeFailureRate, "fake-failure-rate", 0, "with --runtime fake: share of simulated container starts (0 to 1) that fail, the container exiting with code 1")
	cmd.Flags().StringVar(&f.containerdAddr, "containerd-address", "", "unix socket of the containerd that runs the node's containers (default /run/containerd/containerd.sock)")
	cmd.Flags().StringVar(&f.namespace, "containerd-namespace", "berth", "containerd namespace for the node's containers and images")
	cmd.Flags().StringVar(&f.buildkitAddr, "buildkit-addr", "", "address of a running buildkitd to build images with (its containerd worker must use --containerd-namespace); default: start one under --data-dir on the first build")
	cmd.Flags().IntVar(&f.maxStarts, "max-concurrent-starts", worker.DefaultMaxConcurrentStarts(), "container creates and starts at once (default: 2 per CPU, at most 16); more wait their turn, in preparing; 0 for no bound")
	cmd.Flags().IntVar(&f.maxPulls, "max-concurrent-pulls", worker.DefaultMaxConcurrentPulls, "image pulls at once; more wait their turn, in preparing; 0 for no bound")
	cmd.Flags().IntVar(&f.imageGCHigh, "image-gc-high-percent", image.DefaultGCHighPercent, "disk usage (percent) of containerd's filesystem above which unused images are removed, oldest first")
	cmd.Flags().IntVar(&f.imageGCLow, "image-gc-low-percent", image.DefaultGCLowPercent, "disk usage (percent) that image cleanup brings the filesystem back under")
	cmd.Flags().StringVar(&f.diskFloor, "disk-floor", nodecheck.DefaultDiskFloor, "free space the data directory's filesystem needs for the node to be ready: a size (500MiB, 2G) or a percentage (5%); below it the node is not ready (disk) and takes no new tasks")
	cmd.Flags().StringVar(&f.inodeFloor, "inode-floor", nodecheck.DefaultInodeFloor, "free inodes the data directory's filesystem needs for the node to be ready: a number or a percentage")
}

func (f *agentFlags) config(server string, log *slog.Logger) (agent.Config, error) {
	if f.runtime != "fake" && (f.fakeStartLatency != 0 || f.fakeFailureRate != 0) {
		return agent.Config{}, fmt.Errorf("--fake-start-latency and --fake-failure-rate simulate containers: use them with --runtime fake, not --runtime %s", f.runtime)
	}
	labels := map[string]string{}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return agent.Config{}, fmt.Errorf("--label %q: expected KEY=VALUE", l)
		}
		labels[k] = v
	}
	name := f.name
	if name == "" {
		name, _ = os.Hostname()
	}
	dataDir := f.dataDir
	if dataDir == "" {
		dataDir = defaultDataDir("agent-" + name)
	}
	return agent.Config{
		Server: server, Token: f.token, Name: name, DataDir: dataDir, Listen: f.listen, GossipAddr: f.gossip,
		Labels: labels, MilliCPUs: int64(f.cpus * 1000), MemoryBytes: f.memory,
		Runtime: f.runtime, ContainerdAddress: f.containerdAddr, ContainerdNamespace: f.namespace, BuildkitAddr: f.buildkitAddr, Log: log,
		ContentAddr: f.contentAddr, ImageGCHighPercent: f.imageGCHigh, ImageGCLowPercent: f.imageGCLow,
		FakeStartLatency: f.fakeStartLatency, FakeFailureRate: f.fakeFailureRate,
		MaxConcurrentStarts: noBound(f.maxStarts), MaxConcurrentPulls: noBound(f.maxPulls),
		DiskFloor: f.diskFloor, InodeFloor: f.inodeFloor,
	}, nil
}

// noBound turns a limit flag's 0 (no bound) into agent.Config's, where 0
// picks the default.
func noBound(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func newAgentCommand() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a node agent",
		Long: `Run a Berth node agent: it joins the cluster with a token the first time,
then keeps a session with the control plane and runs the node's containers
with containerd. Containers keep running when the agent stops; a restarted
agent adopts them.`,
		Example: `  berth agent --join 10.0.0.1:4242 --token BERTH-1-... --label zone=eu`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.cleanup.run {
				return f.runCleanup(cmd)
			}
			if f.join == "" {
				return fmt.Errorf("--join is required: the address of a Berth server")
			}
			log, err := f.log.logger(os.Stderr)
			if err != nil {
				return err
			}
			cfg, err := f.config(f.join, log)
			if err != nil {
				return err
			}
			reg, health := metrics.NewRegistry(), metrics.NewHealth()
			cfg.Metrics, cfg.Health = reg, health
			// Served from the start: an agent waiting for the control
			// plane is alive, and its /readyz says why it is not ready.
			started := startingCheck(health, "joining the cluster and connecting to the control plane")
			served, err := serveMetrics(cmd, f.metricsAddr, reg, health, log)
			if err != nil {
				return err
			}
			defer served.Close()
			ctx := cmd.Context()
			a, err := agent.Start(ctx, cfg)
			if err != nil {
				return err
			}
			defer a.Stop()
			started()
			fmt.Fprintf(cmd.OutOrStdout(), "Berth agent %s joined as node %s\n", cfg.Name, a.NodeID())
			select {
			case <-ctx.Done():
				return nil
			case err := <-a.Err():
				return err
			case err := <-served.Err():
				return err
			}
		},
	}
	f.add(cmd, true)
	return cmd
}

func newDevCommand() *cobra.Command {
	var sf serverFlags
	var af agentFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a one-machine cluster: a server and a local agent in one process",
		Long: `Run a whole Berth cluster on this machine: a server with embedded etcd and
one agent, in one process. The admin config is written to --config (default
~/.berth/config), so the other berth commands work right away.`,
		Example: `  berth dev
  berth apply -f examples/hello/compose.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			started := time.Now()
			run, err := sf.start(cmd)
			if err != nil {
				return err
			}
			defer run.stop()
			srv, token, log := run.srv, run.token, run.log
			if af.name == "" {
				af.name = "dev"
			}
			af.token = token
			af.dataDir = filepath.Join(sf.dataDir, "agent")
			af.listen = "127.0.0.1:0"
			cfg, err := af.config(srv.Addr(), log)
			if err != nil {
				return err
			}
			// One process, one metrics endpoint: the server's.
			cfg.Metrics, cfg.Health = run.registry, run.health
			a, err := agent.Start(ctx, cfg)
			if err != nil {
				return err
			}
			defer a.Stop()
			fmt.Fprintf(cmd.OutOrStdout(), `Berth is running (ready in %s): server %s, node %q, data in %s
The admin config is %s. Try:
  berth image import bin/images/busybox.tar
  berth apply -f examples/hello/compose.yaml
  berth ps
Stop with Ctrl-C; containers keep running and are adopted on the next start.
`, time.Since(started).Round(time.Millisecond), srv.Addr(), cfg.Name, sf.dataDir, cli.ConfigPath(cmd))
			select {
			case <-ctx.Done():
				return nil
			case err := <-srv.Err():
				return err
			case err := <-a.Err():
				return err
			case err := <-run.metrics.Err():
				return err
			}
		},
	}
	sf.add(cmd, defaultDevDataDir())
	af.add(cmd, false)
	return cmd
}

func defaultDevDataDir() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".berth", "dev")
}
