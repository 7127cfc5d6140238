// Package agent assembles a Berth node agent: it joins the cluster, keeps
// its session with the control plane, runs the node's tasks through the
// worker and the container runtime, and serves the node's logs and images
// to the control plane.
package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/agent/build"
	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/nodecheck"
	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/containerd"
	"github.com/berthproject/berth/agent/runtime/fake"
	"github.com/berthproject/berth/agent/session"
	"github.com/berthproject/berth/agent/sweep"
	"github.com/berthproject/berth/agent/volume"
	"github.com/berthproject/berth/agent/worker"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/api/version"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/berthproject/berth/internal/supervise"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Agent is a running node agent.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	creds *session.Credentials
	// live is the node certificate and trust bundle in use: the session
	// renews them, the listeners and clients read them.
	live     *identity.Live
	rt       runtime.Runtime
	closeRT  func() error
	network  *lazyNetwork
	gossip   *nodeGossip
	worker   *worker.Worker
	session  *session.Session
	grpc     *grpc.Server
	listener net.Listener
	// grpcMetrics measures the calls to the node endpoint.
	grpcMetrics *metrics.GRPC
	// content serves the node's images to peers on contentListener; nil
	// with the fake runtime.
	content         *http.Server
	contentListener net.Listener
	puller          *image.Puller
	// trust verifies tasks' images against their trust policies.
	trust *image.Trust

	runCtx context.Context
	cancel context.CancelFunc
	tasks  *supervise.Group

	// checker checks what the node needs to run containers; its
	// conditions go in the hello and, when they change, a heartbeat.
	checker *nodecheck.Checker

	// builder builds images on this node; nil with the fake runtime.
	builder *build.Builder

	// cpuSamples keeps each task's last CPU sample for Stats.
	cpuSamples cpuSampler

	// volumes holds the node's volumes, under DataDir/volumes.
	volumes *volume.Store
	// payloads keeps the data of the secrets and configs of the node's
	// assigned tasks, in memory only.
	payloads *files.Payloads
	// sweeper removes containers and network left by tasks the worker
	// no longer knows.
	sweeper *sweep.Sweeper
	// unlock releases the data dir's lock (lockDataDir).
	unlock func()
}

// Start joins (when needed), connects and runs an agent. It returns once
// the first session with the control plane is up.
func Start(ctx context.Context, cfg Config) (_ *Agent, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Log, tasks: supervise.New(), payloads: files.NewPayloads()}
	defer func() {
		if err != nil {
			a.Stop()
		}
	}()
	if a.unlock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	pkiDir := filepath.Join(cfg.DataDir, "pki")
	host, _ := os.Hostname()
	a.creds, err = session.LoadOrJoin(ctx, pkiDir, cfg.servers(), cfg.Token,
		session.Node{Name: cfg.Name, Hostname: host, Labels: cfg.Labels})
	if err != nil {
		return nil, err
	}
	if a.live, err = identity.NewLive(a.creds.Cert, a.creds.Key, a.creds.CA); err != nil {
		return nil, fmt.Errorf("the node credentials in %s: %w; remove %s to join again", pkiDir, err, pkiDir)
	}
	a.volumes, err = volume.New(cfg.DataDir, cfg.Log.With("component", "volumes"))
	if err != nil {
		return nil, err
	}
	if err := a.startRuntime(ctx); err != nil {
		return nil, err
	}
	if a.checker, err = a.newChecker(); err != nil {
		return nil, err
	}
	// Checked before the first hello, which carries the conditions.
	a.checker.Check(ctx)
	if err := a.listen(); err != nil {
		return nil, err
	}
	if err := a.startImages(); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.runCtx, a.cancel = runCtx, cancel
	a.session = session.New(session.Config{
		Servers: cfg.servers(), ServersFile: filepath.Join(cfg.DataDir, "servers"),
		Credentials: a.creds, Live: a.live, PKIDir: pkiDir, Handler: a, Log: cfg.Log.With("component", "session"),
	})
	a.worker = worker.New(a.rt, a.reportStatus, cfg.Log.With("component", "worker"))
	a.worker.SetImages(a.puller)
	a.trust = image.NewTrust(nil, a.puller.Source)
	a.worker.SetVerifier(a.trust)
	a.worker.SetFiles(a.payloads)
	a.worker.SetNodeName(cfg.Name)
	a.worker.SetLimits(cfg.workLimits())
	a.sweeper = a.newSweeper()
	if cfg.Metrics != nil {
		collectors := append(a.worker.Collectors(), metrics.CertExpiry("node", a.creds.NodeID, a.live.NotAfter), a.sweeper.Collector(), a.trust.Collector())
		collectors = append(collectors, a.grpcMetrics.Collectors()...)
		collectors = append(collectors, containerMetrics{stats: func(ctx context.Context) ([]runtime.ContainerStats, error) { return a.rt.Stats(ctx, nil) }, tasks: a.worker.Tasks})
		if a.network != nil {
			collectors = append(collectors, a.network.programming)
		}
		if err := metrics.Register(cfg.Metrics, collectors...); err != nil {
			return nil, err
		}
	}
	a.registerHealth(cfg.Health)
	if err := a.worker.Start(runCtx); err != nil {
		return nil, fmt.Errorf("adopting this node's containers: %w", err)
	}
	// The first sweep comes after the worker adopted the node's
	// containers, so that none of them is taken for garbage.
	a.tasks.Go("sweep", func() error { return a.sweeper.Run(runCtx) })
	a.gossip = newNodeGossip(cfg.GossipAddr, cfg.servers()[0], cfg.DataDir, cfg.Log.With("component", "gossip"))
	a.tasks.Go("gossip", func() error { return a.gossip.run(runCtx) })
	a.tasks.Go("session", func() error { return a.session.Run(runCtx) })
	a.tasks.Go("node checks", func() error { return a.checker.Run(runCtx) })
	a.tasks.Go("node endpoint", func() error { return a.grpc.Serve(a.listener) })
	if a.content != nil {
		a.tasks.Go("content server", a.serveContent)
		a.tasks.Go("image cleanup", func() error { return a.runImageCleanup(runCtx, cfg.ContainerdRoot) })
	}
	select {
	case <-a.session.Connected():
	case err := <-a.tasks.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a.log.Info("agent ready", "node", cfg.Name, "id", a.creds.NodeID, "endpoint", a.listener.Addr().String())
	return a, nil
}

func (a *Agent) startRuntime(ctx context.Context) error {
	switch a.cfg.Runtime {
	case "", "containerd":
		// The node's address is known once the endpoint listens.
		a.network = newLazyNetwork(a.cfg.Name, a.cfg.DataDir, a.creds.NodeID, "")
		// Secrets and configs go to a tmpfs out of the data dir, which is
		// on disk.
		dirs, err := files.NewDirs(files.DefaultRoot, a.creds.NodeID)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		rt, err := containerd.New(ctx, containerd.Config{
			Address:   a.cfg.ContainerdAddress,
			Namespace: a.cfg.ContainerdNamespace,
			Owner:     a.creds.NodeID,
			StateDir:  filepath.Join(a.cfg.DataDir, "runtime"),
			Network:   a.network,
			Volumes:   a.volumes,
			Files:     dirs,
		})
		if err != nil {
			return err
		}
		a.rt, a.closeRT = rt, rt.Close
		// Builds go into the runtime's namespace, unpacked for its
		// snapshotter. The builder's own buildkitd starts with the first
		// build, so a node that never builds runs none.
		a.builder, err = build.New(build.Config{
			Addr:                a.cfg.BuildkitAddr,
			ContainerdAddress:   a.cfg.ContainerdAddress,
			ContainerdNamespace: a.cfg.ContainerdNamespace,
			StateDir:            filepath.Join(a.cfg.DataDir, "buildkit"),
			Log:                 a.log.With("component", "build"),
		})
		if err != nil {
			return err
		}
	case "fake":
		rt, err := fake.NewWith(fake.Options{StartLatency: a.cfg.FakeStartLatency, FailureRate: a.cfg.FakeFailureRate, AnyImage: true})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.rt, a.closeRT = rt, func() error { return nil }
	default:
		return fmt.Errorf("agent: unknown runtime %q: use containerd or fake", a.cfg.Runtime)
	}
	return nil
}

// listen opens the node endpoint, served with the node certificate.
func (a *Agent) listen() error {
	addr := a.cfg.Listen
	if addr == "" {
		addr = net.JoinHostPort(localAddressFor(a.cfg.servers()[0]), "0")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node endpoint on %s: %w", addr, err)
	}
	a.listener = l
	if a.network != nil {
		a.network.address = l.Addr().String()
	}
	// The certificate in use at each handshake: a renewal needs no
	// restart.
	tlsCfg := a.live.ServerTLS([]string{"h2"}, nil)
	a.grpcMetrics = metrics.NewGRPC("node")
	a.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.ChainUnaryInterceptor(a.grpcMetrics.Unary, authorizeUnary), grpc.ChainStreamInterceptor(a.grpcMetrics.Stream, authorizeStream))
	berthv1.RegisterNodeServiceServer(a.grpc, &nodeService{a: a})
	return nil
}

// localAddressFor is the local IP address that routes to server: the node
// endpoint listens there so the control plane can reach it.
func localAddressFor(server string) string {
	c, err := net.Dial("udp", server)
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// NodeID is the node's id in the cluster.
func (a *Agent) NodeID() string { return a.creds.NodeID }

// Err reports a failure that stops the agent.
func (a *Agent) Err() <-chan error { return a.tasks.Err() }

// Stop stops the agent. Containers keep running; a restarted agent adopts
// them.
func (a *Agent) Stop() {
	if a.gossip != nil {
		a.gossip.leave()
	}
	if a.grpc != nil {
		a.grpc.Stop()
	}
	if a.content != nil {
		a.content.Close()
	}
	if a.contentListener != nil {
		// Closed also when Serve never ran (Start failed before it).
		a.contentListener.Close()
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.tasks.Wait()
	if a.worker != nil {
		a.worker.Wait()
	}
	if a.builder != nil {
		if err := a.builder.Close(); err != nil {
			a.log.Warn("stopping the image builder", "err", err)
		}
	}
	if a.closeRT != nil {
		a.closeRT()
	}
	if a.network != nil {
		a.network.Close()
	}
	if a.listener != nil {
		a.listener.Close()
	}
	if a.unlock != nil {
		a.unlock()
	}
}

// Hello describes the node for a new session.
func (a *Agent) Hello() *berthv1.AgentHello {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return &berthv1.AgentHello{Description: a.describe(ctx), Tasks: a.worker.Statuses()}
}

// Welcome joins the gossip and configures the container network with the
// node's subnet.
func (a *Agent) Welcome(w *berthv1.SessionWelcome) {
	if err := a.gossip.welcome(a.creds.NodeID, w.GetGossip()); err != nil {
		a.log.Error("gossip; the control plane will rely on the session alone to judge this node", "err", err)
	}
	if a.network == nil {
		return
	}
	// The network check has a subnet to judge from here on.
	if a.checker != nil {
		defer a.checker.Kick()
	}
	first, err := a.network.configure(w)
	if err != nil {
		a.log.Error("container network", "subnet", w.Subnet, "err", err)
		return
	}
	if first {
		// Namespaces and links left while the network was not set up
		// can be listed now.
		a.sweeper.Kick()
	}
}

// newSweeper returns the node's sweep over the worker's tasks, the
// runtime's containers and, with containerd, the node network.
func (a *Agent) newSweeper() *sweep.Sweeper {
	cfg := sweep.Config{Tasks: workerTasks{a.worker}, Containers: a.rt, Log: a.log.With("component", "sweep")}
	if a.network != nil {
		cfg.Network = a.network
	}
	return sweep.New(cfg)
}

// workerTasks is the worker seen by the sweep.
type workerTasks struct{ w *worker.Worker }

func (t workerTasks) Known() sweep.Known {
	tasks, inFlight := t.w.Inventory()
	return sweep.Known{Tasks: tasks, InFlight: inFlight}
}

// Assign hands assignments to the worker, and first the sources of their
// images to the puller and the data of their secrets and configs to the
// payloads.
func (a *Agent) Assign(as *berthv1.Assignments) {
	a.puller.SetSources(as.GetImageSources())
	a.trust.Set(as)
	a.payloads.Apply(as)
	a.worker.Assign(as)
}

// NetworkMap hands the cluster's network map to the node's network.
func (a *Agent) NetworkMap(m *berthv1.NetworkMap) {
	if a.network != nil {
		a.network.setMap(m)
	}
}

func (a *Agent) describe(ctx context.Context) *berthv1.NodeDescription {
	host, _ := os.Hostname()
	cpus, mem := a.cfg.MilliCPUs, a.cfg.MemoryBytes
	if cpus == 0 {
		cpus = int64(goruntime.NumCPU()) * 1000
	}
	if mem == 0 {
		mem = totalMemory()
	}
	images, digests := a.images(ctx)
	var conditions []*berthv1.NodeCondition
	if a.checker != nil {
		conditions = a.checker.Conditions()
	}
	return &berthv1.NodeDescription{
		Name:         a.cfg.Name,
		Hostname:     host,
		Address:      a.listener.Addr().String(),
		Labels:       a.cfg.Labels,
		Capacity:     &berthv1.Resources{MilliCpus: cpus, MemoryBytes: mem},
		Platform:     &berthv1.Platform{Os: goruntime.GOOS, Architecture: goruntime.GOARCH},
		Images:       images,
		AgentVersion: version.String(),
		// The content server answers before the first session, so peers
		// told of this address can fetch from it at once.
		ContentAddress: a.contentAddress(),
		ImageDigests:   digests,
		// Nodes of the fake runtime run no containers and need no map.
		Overlay:    a.network != nil,
		Conditions: conditions,
	}
}

func (a *Agent) imageNames(ctx context.Context) []string {
	names, _ := a.images(ctx)
	return names
}

// totalMemory reads the machine's memory from /proc/meminfo.
func totalMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
