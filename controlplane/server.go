// Package controlplane assembles a Berth server: etcd (embedded or
// external), the store and its cache, the cluster CA, the gRPC API for
// clients and agents, and, on the elected leader, the orchestrator.
package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
	"github.com/berthproject/berth/api/version"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/audit"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/dispatcher"
	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/nodehealth"
	"github.com/berthproject/berth/controlplane/orchestrator"
	"github.com/berthproject/berth/controlplane/ratelimit"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/snapshot"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/trigger"
	"github.com/berthproject/berth/controlplane/trust"
	"github.com/berthproject/berth/internal/gossip"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/berthproject/berth/internal/supervise"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is a running control plane.
type Server struct {
	cfg Config
	// id names this run of the server: its record under /berth/servers/
	// and its gossip member.
	id        string
	log       *slog.Logger
	embedded  *etcd.Embedded
	etcd      *clientv3.Client
	store     *store.Store
	cache     *store.Cache
	authority *ca.Authority
	nodes     *apiserver.NodeClients
	grpc      *grpc.Server
	listener  net.Listener
	http      *httpAPI
	admin     atomic.Pointer[clientconfig.Config]
	certs     *serverCerts
	gossip    *gossip.Member
	leader    *leaderView
	servers   *serverRegistry
	disp      *dispatcher.Dispatcher
	// trust keeps signing keys and trust policies; Trust exposes it.
	trust *trust.Trust
	// registries keeps the registry credentials; apiTokens and users
	// mirror the API tokens and users; streams are the open streams,
	// ended when their token or certificate is revoked.
	registries *registry.Credentials
	apiTokens  *store.Mirror[*berthv1.APIToken]
	users      *store.Mirror[*berthv1.User]
	streams    *openStreams
	// audit records the calls that change something; auditExport is the
	// file it also writes them to, if any.
	audit       *audit.Recorder
	auditExport io.Closer
	// placements are the orchestrators' metrics, kept across terms.
	placements *orchestrator.Metrics
	// triggers are the build triggers and their runs; triggerRunner runs
	// them while this server leads; hooks takes their webhooks.
	triggers      *trigger.Records
	triggerRunner *trigger.Runner
	hooks         *trigger.Hooks
	// snapshots takes snapshots of the cluster; periodic writes them
	// while this server leads.
	snapshots *snapshot.Maker
	periodic  *snapshot.Periodic

	cancel context.CancelFunc
	tasks  *supervise.Group
}

// Start brings up a server and returns once it serves: it fills in the
// defaults of cfg and validates it, opens etcd and the cluster's keys,
// listens, assembles the cluster's services and runs them.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, id: store.NewID(), log: cfg.Log, tasks: supervise.New(), leader: &leaderView{}}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	kek, err := s.openStore(ctx)
	if err != nil {
		return nil, err
	}
	advertise, err := s.listen()
	if err != nil {
		return nil, err
	}
	api, err := s.assemble(kek, advertise)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx, api, advertise); err != nil {
		return nil, err
	}
	return s, nil
}

// openStore opens etcd (the embedded member, or the external cluster,
// checked first so that a mistyped endpoint does not quietly start a new
// cluster in the data dir), the store and its cache, the key-encryption
// key, and the cluster CA.
func (s *Server) openStore(ctx context.Context) (*seal.Key, error) {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var err error
	if cfg.embeddedEtcd() {
		s.embedded, err = etcd.StartEmbedded(etcd.EmbeddedConfig{DataDir: filepath.Join(cfg.DataDir, "etcd")})
		if err != nil {
			return nil, err
		}
		s.etcd = s.embedded.Client()
	} else {
		if _, err := etcd.CheckEndpoints(cfg.EtcdEndpoints, cfg.EtcdTLS); err != nil {
			return nil, err
		}
		if s.etcd, err = etcd.Connect(ctx, cfg.EtcdEndpoints, cfg.EtcdTLS); err != nil {
			return nil, err
		}
	}
	s.store = store.New(s.etcd)
	s.cache = store.NewCache(s.store, cfg.Log.With("component", "cache"))
	kek, err := openKEK(ctx, s.store, cfg.kekSource(), cfg.Log)
	if err != nil {
		return nil, err
	}
	if err := sealAtRest(ctx, s.store, kek, cfg.Log); err != nil {
		return nil, err
	}
	s.authority, err = ca.Open(ctx, caPersistence{s.store}, kek, nil, ca.WithLeafLifetime(cfg.CertLifetime))
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	if err := s.startSnapshots(kek); err != nil {
		return nil, err
	}
	return kek, nil
}

// etcdAt is where operators' tools (etcdctl, backups) reach etcd: the
// server itself calls the embedded member in process.
func (s *Server) etcdAt() string {
	if s.embedded != nil {
		return s.embedded.Endpoint()
	}
	return strings.Join(s.cfg.EtcdEndpoints, ",")
}

// listen opens the gRPC listener and the server certificate for it, and
// writes the admin config; it returns the address clients and agents are
// told to use.
func (s *Server) listen() (advertise string, err error) {
	cfg := s.cfg
	s.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	advertise = cmp.Or(cfg.Advertise, s.listener.Addr().String())
	// Open streams end when their token or certificate is revoked: the
	// mirrors of tokens and of the deny-list tell the registry.
	s.streams = newOpenStreams()
	s.certs, err = newServerCerts(s.store, s.authority, serverHosts(s.listener.Addr().String(), advertise), s.streams.certificateRevoked, cfg.Log.With("component", "certificates"))
	if err != nil {
		return "", err
	}
	s.nodes = apiserver.NewNodeClients(s.certs.creds)
	s.certs.admin = func() error { return s.writeAdminConfig(advertise) }
	if err := s.writeAdminConfig(advertise); err != nil {
		return "", err
	}
	return advertise, nil
}

// assemble makes the cluster's services (gossip, registries, trust, the
// dispatcher, the cluster API, build triggers, the audit) and the gRPC
// server, and the HTTP/JSON API when one is asked for.
func (s *Server) assemble(kek *seal.Key, advertise string) (*apiserver.Server, error) {
	cfg := s.cfg
	gossipCfg, err := s.startGossip(advertise)
	if err != nil {
		return nil, err
	}
	subnets, err := dispatcher.NewSubnetPool(cfg.ContainerRange, 24)
	if err != nil {
		return nil, err
	}
	creds := registry.New(registry.Config{
		Store: s.store, Key: kek, Settings: s.cache.Settings,
		Log: cfg.Log.With("component", "registries"),
	})
	s.registries = creds
	trusted := trust.New(trust.Config{
		Store: s.store, KEK: kek, Registries: creds, Log: cfg.Log.With("component", "trust"),
	})
	s.trust = trusted
	s.servers = &serverRegistry{
		cli: s.etcd, leader: s.leader, lease: cfg.LeaderLease, log: cfg.Log.With("component", "servers"),
		self: &berthv1.ServerInfo{
			Id: s.id, Address: advertise, GossipAddress: s.gossip.Addr(),
			Version: version.Version, StartedAt: timestamppb.Now(),
		},
	}
	disp := dispatcher.New(dispatcher.Config{
		Store: s.store, Cache: s.cache, Authority: s.authority, Log: cfg.Log.With("component", "dispatcher"),
		HeartbeatPeriod: cfg.HeartbeatPeriod, Subnets: subnets, Gossip: gossipCfg,
		ImageAuth: creds.ImageAuth, ImageTrust: trusted.ImageTrust, Leader: s.leader.Address, Servers: s.servers.list, KEK: kek,
	})
	s.disp = disp
	s.certs.trustChanged = disp.TrustChanged
	s.apiTokens = apiserver.NewAPITokenMirror(s.store, s.streams.tokenChanged, cfg.Log.With("component", "api-tokens"))
	s.users = apiserver.NewUserMirror(s.store, cfg.Log.With("component", "users"))
	s.triggers = trigger.NewRecords(s.store, func() {
		if r := s.triggerRunner; r != nil {
			r.Wake()
		}
	}, cfg.Log.With("component", "triggers"))
	containerRange, networkRange := cfg.ranges()
	api := apiserver.New(apiserver.Config{
		Store: s.store, Cache: s.cache, Authority: s.authority, Nodes: s.nodes, Registries: creds, KEK: kek,
		Log:     cfg.Log.With("component", "api"),
		Servers: s.servers.list, NetworkRange: networkRange, ContainerRange: containerRange,
		APITokens: s.apiTokens, Users: s.users, Triggers: s.triggers, Trust: trusted, Snapshots: s.snapshots,
	})
	// A trigger's run scans what it built under the namespace's scan gate and
	// signs it with the cluster's keys.
	s.triggerRunner = trigger.NewRunner(trigger.RunnerConfig{
		Records: s.triggers, Store: s.store, Cluster: api.TriggerCluster(),
		Scanner: api, Signer: trusted, Log: cfg.Log.With("component", "trigger-runner"),
	})
	s.hooks = &trigger.Hooks{Records: s.triggers, Store: s.store, KEK: kek, Log: cfg.Log.With("component", "webhooks")}
	auditCfg := audit.Config{Store: s.store, Log: cfg.Log.With("component", "audit")}
	if cfg.AuditLog != "" {
		export, err := audit.OpenExport(cfg.AuditLog)
		if err != nil {
			return nil, err
		}
		s.auditExport, auditCfg.Export = export, export
	}
	s.audit = audit.New(auditCfg)
	if err := s.newGRPCServer(api); err != nil {
		return nil, err
	}
	if cfg.HTTPListen != "" {
		if s.http, err = s.startHTTPAPI(api); err != nil {
			return nil, err
		}
	}
	return api, nil
}

// newGRPCServer makes the gRPC server of the cluster API and the agents'
// service, with its interceptors, and registers the server's metrics.
func (s *Server) newGRPCServer(api *apiserver.Server) error {
	cfg := s.cfg
	auth := &authenticator{tokens: api, streams: s.streams}
	grpcMetrics := metrics.NewGRPC("server")
	s.placements = orchestrator.NewMetrics()
	if cfg.Metrics != nil {
		cs := []prometheus.Collector{s.placements, nodehealth.Collector(s.cache), metrics.CertExpiry("server", s.id, s.certs.creds.NotAfter), s.trust.Collector(), api.ScanCollector()}
		cs = append(cs, s.store.Collectors()...)
		cs = append(cs, s.disp.Collectors()...)
		cs = append(cs, s.periodic.Collectors()...)
		if err := metrics.Register(cfg.Metrics, append(cs, grpcMetrics.Collectors()...)...); err != nil {
			return err
		}
	}
	s.registerHealth(cfg.Health)
	limits := ratelimit.New(cfg.RateLimits)
	cfg.Log.Debug("rate limits", "limits", limits.String())
	// Every handshake reads the certificate in use and checks the
	// deny-list.
	tlsCfg := s.certs.creds.ServerTLS([]string{"h2"}, s.certs.isRevoked)
	s.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		// authenticate finds the caller; the audit records the call,
		// refused ones too; limits apply per caller; authorize asks the
		// access table.
		grpc.ChainUnaryInterceptor(grpcMetrics.Unary, auth.authenticateUnary, s.audit.Unary, limits.Unary, authorizeUnary, deadlineUnary),
		grpc.ChainStreamInterceptor(grpcMetrics.Stream, auth.authenticateStream, s.audit.Stream, limits.Stream, authorizeStream),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// A connection per node, mostly idle: each one holding 32 KiB
		// read and write buffers is 64 MiB at a thousand nodes. Writes
		// share buffers; reads go to the TLS connection, which buffers a
		// record anyway.
		grpc.SharedWriteBuffer(true),
		grpc.ReadBufferSize(0),
	)
	berthv1.RegisterClusterServiceServer(s.grpc, api)
	berthv1.RegisterAgentServiceServer(s.grpc, s.disp)
	return nil
}

// run starts the server's loops, waits until its cache and certificates
// are in step with etcd, and then serves.
func (s *Server) run(ctx context.Context, api *apiserver.Server, advertise string) error {
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.tasks.Go("cache", func() error { return s.cache.Run(runCtx) })
	s.tasks.Go("certificates", func() error { return s.certs.run(runCtx) })
	for _, synced := range []<-chan struct{}{s.cache.Synced(), s.certs.synced()} {
		select {
		case <-synced:
		case err := <-s.tasks.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.tasks.Go("api tokens", func() error { return ignoreCanceled(s.apiTokens.Run(runCtx)) })
	s.tasks.Go("users", func() error { return ignoreCanceled(s.users.Run(runCtx)) })
	s.tasks.Go("triggers", func() error { return ignoreCanceled(s.triggers.Run(runCtx)) })
	s.tasks.Go("registries", func() error { return s.registries.Run(runCtx) })
	s.tasks.Go("trust", func() error { return s.trust.Run(runCtx) })
	s.tasks.Go("servers", func() error { return s.servers.run(runCtx) })
	s.tasks.Go("leader view", func() error { return s.leader.run(runCtx, s.etcd, s.log) })
	s.tasks.Go("leader", func() error { return s.lead(runCtx, advertise) })
	s.tasks.Go("grpc", func() error { return s.grpc.Serve(s.listener) })
	if err := s.registerClusterMetrics(runCtx, s.cfg.Metrics); err != nil {
		return err
	}
	if s.http != nil {
		s.tasks.Go("http", s.http.serve)
	}
	if s.embedded != nil {
		s.tasks.Go("etcd", func() error {
			select {
			case err := <-s.embedded.Err():
				return fmt.Errorf("embedded etcd: %w", err)
			case <-runCtx.Done():
				return nil
			}
		})
	}
	s.log.Info("server ready", "listen", s.listener.Addr().String(), "http", s.HTTPAddr(), "etcd", s.etcdAt(), "cluster", s.authority.ClusterID())
	return nil
}

// ignoreCanceled is err, except the end of a run that was asked to stop.
func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// startGossip joins the server to the cluster's gossip and returns what
// agents need to join it.
func (s *Server) startGossip(advertise string) (*berthv1.GossipConfig, error) {
	g := s.cfg.Gossip
	addr := g.Addr
	if addr == "" {
		host, _, err := net.SplitHostPort(advertise)
		if err != nil {
			return nil, fmt.Errorf("advertise address %q: %w", advertise, err)
		}
		addr = net.JoinHostPort(host, "0")
	}
	key := s.authority.GossipKey()
	m, err := gossip.Start(gossip.Config{
		// Agents are named by node id; a server by a fresh id each start,
		// so a restarted server never contends with its former self.
		Name: "server-" + s.id, Bind: addr, Key: key,
		ProbeInterval: g.ProbeInterval, ProbeTimeout: g.ProbeTimeout, SuspicionMult: g.SuspicionMult,
		Log: s.log.With("component", "gossip"),
	})
	if err != nil {
		return nil, fmt.Errorf("%w (set the gossip address with --gossip-addr)", err)
	}
	s.gossip = m
	return &berthv1.GossipConfig{
		Seeds:         []string{m.Addr()},
		Key:           key,
		ProbeInterval: durationpb.New(cmp.Or(g.ProbeInterval, gossip.DefaultProbeInterval)),
		ProbeTimeout:  durationpb.New(cmp.Or(g.ProbeTimeout, gossip.DefaultProbeTimeout)),
		SuspicionMult: uint32(cmp.Or(g.SuspicionMult, gossip.DefaultSuspicionMult)),
	}, nil
}

// lead campaigns for leadership through etcd and, while this server
// leads, runs the orchestrator, node health, the dispatcher's term and
// the build triggers' runs.
// Every write they make carries the term's fence.
func (s *Server) lead(ctx context.Context, address string) error {
	orch := orchestrator.New(s.store, s.cache, s.log.With("component", "orchestrator"), orchestrator.WithMetrics(s.placements),
		orchestrator.WithNotReadyGrace(s.cfg.NotReadyGrace))
	period := cmp.Or(s.cfg.HeartbeatPeriod, dispatcher.DefaultHeartbeatPeriod)
	health := nodehealth.New(s.store, s.cache, s.gossip, s.log.With("component", "nodehealth"), s.cfg.NodeDownGrace).
		// Two periods: under load a heartbeat arrives a period late
		// without the node being dead, and a false down verdict
		// moves its tasks and adds to the load (at 200 simulated nodes
		// on two cores, a quarter of a period of slack let gossip's
		// false deaths through and the cluster never settled).
		WithSessions(s.disp, 2*period).
		WithGuard(cmp.Or(s.cfg.MassLoss.Share, nodehealth.DefaultGuardShare), cmp.Or(s.cfg.MassLoss.MinNodes, nodehealth.DefaultGuardMinNodes))
	return campaign(ctx, s.etcd, s.log, address, s.cfg.LeaderLease, func(ctx context.Context) error {
		s.leader.set(address)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sweep := &audit.Sweep{Store: s.store, Keep: s.cfg.AuditRetention, Log: s.log.With("component", "audit")}
		parts := []func(context.Context) error{orch.Run, health.Run, s.disp.Run, sweep.Run, s.certs.pruneLoop(s.store), s.triggerRunner.Run, s.periodicSnapshots}
		errc := make(chan error, len(parts))
		for _, run := range parts {
			go func() { errc <- run(ctx) }()
		}
		// The parts lead together: when one stops, the term ends.
		var errs []error
		for range parts {
			errs = append(errs, <-errc)
			cancel()
		}
		return errors.Join(errs...)
	})
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// HTTPAddr is the address the HTTP/JSON API listens on; empty when it is
// not served.
func (s *Server) HTTPAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.listener.Addr().String()
}

// AdminConfig is a client config with admin credentials for this server,
// of the CA in use: a CA rotation replaces it.
func (s *Server) AdminConfig() *clientconfig.Config { return s.admin.Load() }

// writeAdminConfig makes the admin config for the CA in use, and writes
// it to ConfigPath when one is set.
func (s *Server) writeAdminConfig(advertise string) error {
	cfg, err := adminConfig(s.authority, advertise)
	if err != nil {
		return err
	}
	s.admin.Store(cfg)
	if s.cfg.ConfigPath != "" {
		if err := clientconfig.Save(s.cfg.ConfigPath, cfg); err != nil {
			return fmt.Errorf("writing the admin config: %w", err)
		}
	}
	return nil
}

// JoinToken returns a valid join token.
func (s *Server) JoinToken(ctx context.Context) (string, error) {
	tok, _, err := s.authority.JoinToken(ctx, false, 0, 0)
	return tok, err
}

// Err reports a failure that stops the server.
func (s *Server) Err() <-chan error { return s.tasks.Err() }

// Stop stops everything the server started.
func (s *Server) Stop() {
	if s.http != nil {
		s.http.stop()
	}
	if s.grpc != nil {
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			s.grpc.Stop()
		}
	} else if s.listener != nil {
		s.listener.Close()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.tasks.Wait()
	if s.gossip != nil {
		s.gossip.Leave(time.Second)
	}
	if s.nodes != nil {
		s.nodes.Close()
	}
	if s.auditExport != nil {
		if err := s.auditExport.Close(); err != nil {
			s.log.Warn("closing the audit log", "err", err)
		}
	}
	if s.store != nil {
		// Events queued by the last writes still reach etcd.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.store.FlushEvents(ctx); err != nil {
			s.log.Warn("events not written before stopping", "err", err)
		}
		cancel()
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
	if s.embedded != nil {
		s.embedded.Close()
	}
}

// serverHosts are the names the server certificate is valid for.
func serverHosts(addrs ...string) []string {
	hosts := []string{"localhost", "127.0.0.1"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			hosts = append([]string{h}, hosts...)
		}
	}
	return hosts
}

// Trust is the server's signing keys and trust policies: automated builds
// sign what they push with its SignImage.
func (s *Server) Trust() *trust.Trust { return s.trust }
