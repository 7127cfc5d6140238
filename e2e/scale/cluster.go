package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Cluster is a berth server with simulated nodes in pool processes.
type Cluster struct {
	cfg   Config
	dir   string
	srv   *server
	pools []*pool
	// victim is the pool killed to time failure detection; nil when
	// Config.Victims is 0. It is also in pools.
	victim *pool
	http   *http.Client
	etcd   *clientv3.Client
	// agentsReady is how long the nodes took to join and connect.
	agentsReady time.Duration
}

// Start runs the server and the pools, and returns once every node has
// its session. Close stops everything, also after an error.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	raiseFileLimit()
	dir, err := os.MkdirTemp(cfg.Dir, "berth-scale-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, dir: dir, http: &http.Client{Timeout: 30 * time.Second}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.progress("run directory %s", dir)
	if c.srv, err = startServer(ctx, &c.cfg, dir); err != nil {
		return nil, err
	}
	c.etcd, err = clientv3.New(clientv3.Config{Endpoints: c.srv.etcdClients, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd of the server at %v: %w", c.srv.etcdClients, err)
	}
	c.progress("server pid %d on %s, etcd %v", c.srv.pid(), c.srv.addr, c.srv.etcdClients)

	started := time.Now()
	if err := c.startPools(); err != nil {
		return nil, err
	}
	jctx, cancel := context.WithTimeout(ctx, cfg.JoinTimeout)
	defer cancel()
	for _, p := range c.pools {
		if err := p.waitReady(jctx); err != nil {
			all, _ := c.Nodes()
			return nil, fmt.Errorf("%d of %d nodes connected: %w", len(all), cfg.Nodes, err)
		}
	}
	c.agentsReady = time.Since(started)
	c.progress("%d nodes joined and connected in %s", cfg.Nodes, c.agentsReady.Round(time.Millisecond))
	return c, c.waitNodesReady(ctx)
}

// startPools spreads the nodes over the pools: the victims in a pool of
// their own, the rest evenly over Config.Pools.
func (c *Cluster) startPools() error {
	names := make([]string, c.cfg.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("sim-%04d", i)
	}
	groups := [][]string{}
	if c.cfg.Victims > 0 {
		groups = append(groups, names[:c.cfg.Victims])
	}
	rest := names[c.cfg.Victims:]
	for i := range c.cfg.Pools {
		lo, hi := i*len(rest)/c.cfg.Pools, (i+1)*len(rest)/c.cfg.Pools
		groups = append(groups, rest[lo:hi])
	}
	for i, g := range groups {
		name := fmt.Sprintf("pool-%d", i)
		spec := poolSpec{
			Server: c.srv.addr, Token: c.srv.token, Names: g,
			DataDir:      filepath.Join(c.dir, "nodes"),
			Concurrency:  c.cfg.JoinConcurrency,
			StartLatency: c.cfg.StartLatency, FailureRate: c.cfg.FailureRate,
			MemoryLimit: poolMemoryLimit(len(groups)),
		}
		victim := c.cfg.Victims > 0 && i == 0
		if !victim && len(c.pools) == boolInt(c.cfg.Victims > 0) {
			// The first pool that lives to a clean stop.
			spec.CPUProfile = c.cfg.PoolCPUProfile
			spec.HeapProfile = c.cfg.PoolHeapProfile
		}
		p, err := startPool(name, spec, filepath.Join(c.dir, name+".log"))
		if err != nil {
			return err
		}
		c.pools = append(c.pools, p)
		if victim {
			c.victim = p
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitNodesReady waits until the server counts every node ready with a
// session.
func (c *Cluster) waitNodesReady(ctx context.Context) error {
	return c.poll(ctx, time.Minute, func(m metrics) (bool, string) {
		ready, sessions := int(m.get("berth_nodes", `status="ready"`)), int(m.get("berth_agent_sessions", ""))
		return ready == c.cfg.Nodes && sessions == c.cfg.Nodes,
			fmt.Sprintf("%d of %d nodes ready (%.0f unreachable, %.0f down: see the verdicts in the server log), %d sessions",
				ready, c.cfg.Nodes, m.get("berth_nodes", `status="unreachable"`), m.get("berth_nodes", `status="down"`), sessions)
	})
}

// poll scrapes the server's metrics until cond holds, every 250 ms: the
// task counts cost the server a pass over its cache each time.
func (c *Cluster) poll(ctx context.Context, timeout time.Duration, cond func(metrics) (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	why := "no metrics read"
	for {
		m, err := scrape(ctx, c.http, c.srv.metricsURL)
		if err == nil {
			var ok bool
			if ok, why = cond(m); ok {
				return nil
			}
		} else if ctx.Err() == nil {
			why = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %s (server log %s)", timeout, why, c.srv.logPath)
		case <-c.srv.done:
			return fmt.Errorf("the server exited: %s; see %s", why, c.srv.logPath)
		case <-tick.C:
		}
	}
}

// API is the cluster API, as the admin.
func (c *Cluster) API() berthv1.ClusterServiceClient { return c.srv.api }

// App is the app the harness applies.
const App = "scale"

// Apply applies the app: Config.Tasks replicas over Config.Services
// services, no resource reservations, image DefaultImage.
func (c *Cluster) Apply(ctx context.Context) error {
	// One network for every task: an app's default network is a /24, 253
	// tasks. Room for twice the tasks, since a dead node's tasks keep
	// their addresses while their replacements run; one network keeps the
	// apply's transaction within etcd's limit of operations.
	network := App + "_tasks"
	req := &berthv1.ApplyRequest{App: App, Networks: []*berthv1.AppNetwork{{
		Name: network, Subnet: netip.PrefixFrom(networkRange.Addr(), subnetBits(2*c.cfg.Tasks)).String(),
	}}}
	for i := range c.cfg.Services {
		req.Services = append(req.Services, &berthv1.Service{
			Name: fmt.Sprintf("s%03d", i),
			Spec: &berthv1.ServiceSpec{
				Image:    DefaultImage,
				Mode:     berthv1.ServiceMode_SERVICE_MODE_REPLICATED,
				Replicas: uint64(replicas(c.cfg.Tasks, c.cfg.Services, i)),
				Networks: []*berthv1.ServiceNetwork{{Network: network}},
			},
		})
	}
	if _, err := c.srv.api.Apply(ctx, req); err != nil {
		return fmt.Errorf("apply %d services of %d tasks: %w", c.cfg.Services, c.cfg.Tasks, err)
	}
	return nil
}

// networkRange holds the tasks' network: room for millions of tasks.
var networkRange = netip.MustParsePrefix("10.0.0.0/8")

// subnetBits is the prefix length of the smallest subnet with room for n
// tasks, the virtual IPs of a few hundred services and the addresses no
// task gets (network, first host, broadcast), and never smaller than a
// /24.
func subnetBits(n int) int {
	bits := 24
	for bits > 8 && (1<<(32-bits))-1024 < n {
		bits--
	}
	return bits
}

// PrePull has every node pull DefaultImage, through the server as `berth
// pull` does, so the first placements do not favour the nodes whose pull
// happened to finish first (the scheduler prefers nodes holding the image).
func (c *Cluster) PrePull(ctx context.Context) error {
	stream, err := c.srv.api.PullImage(ctx, &berthv1.PullImageRequest{Image: DefaultImage})
	if err != nil {
		return fmt.Errorf("pulling %s on every node: %w", DefaultImage, err)
	}
	done := 0
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("pulling %s on every node: %w", DefaultImage, err)
		}
		if p.GetError() != "" {
			return fmt.Errorf("pulling %s on node %s: %s", DefaultImage, p.GetNodeName(), p.GetError())
		}
		if p.GetDone() {
			done++
		}
	}
	if done != c.cfg.Nodes {
		return fmt.Errorf("pulling %s: %d of %d nodes reported it done", DefaultImage, done, c.cfg.Nodes)
	}
	return c.poll(ctx, time.Minute, func(m metrics) (bool, string) {
		list, err := c.srv.api.ListNodes(ctx, &berthv1.ListNodesRequest{})
		if err != nil {
			return false, err.Error()
		}
		holding := 0
		for _, n := range list.GetNodes() {
			if slices.Contains(n.GetImages(), DefaultImage) {
				holding++
			}
		}
		return holding == c.cfg.Nodes, fmt.Sprintf("%d of %d nodes report %s", holding, c.cfg.Nodes, DefaultImage)
	})
}

// Nodes maps the IDs of the nodes to their names; victims tells the ones
// in the pool KillVictims kills.
func (c *Cluster) Nodes() (all, victims map[string]string) {
	all = map[string]string{}
	for _, p := range c.pools {
		for id, n := range p.nodeIDs() {
			all[id] = n
		}
	}
	if c.victim != nil {
		victims = c.victim.nodeIDs()
	}
	return all, victims
}

// Dir is the run's directory: server and pool logs, data.
func (c *Cluster) Dir() string { return c.dir }

// Close stops the pools and the server, and removes the run's directory
// unless Config.Keep.
func (c *Cluster) Close() error {
	var errs []error
	var wg sync.WaitGroup
	for _, p := range c.pools {
		wg.Go(func() { p.stop(30 * time.Second) })
	}
	wg.Wait()
	if c.etcd != nil {
		c.etcd.Close()
	}
	c.http.CloseIdleConnections()
	if c.srv != nil {
		c.srv.stop()
	}
	if !c.cfg.Keep {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

func (c *Cluster) progress(format string, args ...any) {
	fmt.Fprintf(c.cfg.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// poolMemoryLimit is the soft memory limit of each of n pools: their
// share of 60% of the machine's memory, so that the collector works
// harder before a thousand nodes' gossip fills the machine; 0 when the
// machine's memory is unknown.
func poolMemoryLimit(n int) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return procKiB(b, "MemTotal") << 10 * 6 / 10 / int64(max(1, n))
}
