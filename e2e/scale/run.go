package scale

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured.
type Report struct {
	Nodes, Tasks, Services, Pools int
	// AgentsReady is the time for every node to join and connect.
	AgentsReady time.Duration
	// PrePull is the time for every node to pull the image; 0 when
	// skipped.
	PrePull time.Duration
	// Settled is the wait for the cluster to go quiet before the apply
	// (Config.Settle), and SettledCPU the cores it used at the end of it;
	// both 0 without the wait.
	Settled    time.Duration
	SettledCPU float64
	// ApplyCall is the Apply call's own time; AllPlaced and AllRunning
	// are from the call to every task placed and running.
	ApplyCall, AllPlaced, AllRunning time.Duration
	// Placements is the server's berth_placements_total over the apply.
	Placements float64
	// EtcdTxns are the store's guarded transactions over the apply, by
	// result; EtcdRevisions the revisions etcd moved (one per write txn).
	EtcdTxns      map[string]float64
	EtcdRevisions int64
	// DBBefore and DBAfter are etcd's database size (and in use) before
	// and after the apply.
	DBBefore, DBAfter, DBInUseAfter int64
	// ServerPeak (VmHWM) and ServerRSS (at the end) are the server's
	// memory, embedded etcd included.
	ServerPeak, ServerRSS int64
	// CPU over the apply phase: the server's and all pools'.
	ServerCPUApply, PoolsCPUApply time.Duration
	// CPU over the whole run, up to the end of failure detection.
	ServerCPU, PoolsCPU time.Duration
	// Detection is the failure detection; nil without victims.
	Detection *Detection
}

// TasksPerSecond is tasks over apply → all running.
func (r *Report) TasksPerSecond() float64 {
	if r.AllRunning <= 0 {
		return 0
	}
	return float64(r.Tasks) / r.AllRunning.Seconds()
}

// ServerCPUPer1kTasks is the server's CPU seconds over apply → all
// running, per 1,000 tasks.
func (r *Report) ServerCPUPer1kTasks() float64 {
	if r.Tasks <= 0 {
		return 0
	}
	return r.ServerCPUApply.Seconds() * 1000 / float64(r.Tasks)
}

// PlacementsPerSecond is placements over apply → all placed.
func (r *Report) PlacementsPerSecond() float64 {
	if r.AllPlaced <= 0 {
		return 0
	}
	return r.Placements / r.AllPlaced.Seconds()
}

// Write prints the report as a table.
func (r *Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	s := func(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
	row("nodes", "%d (%d pools + victims)", r.Nodes, r.Pools)
	row("tasks", "%d in %d services", r.Tasks, r.Services)
	row("agents ready", "%s", s(r.AgentsReady))
	row("image pre-pull", "%s", s(r.PrePull))
	if r.Settled > 0 {
		row("settled", "%s, then %.2f cores busy", s(r.Settled), r.SettledCPU)
	}
	row("apply call", "%s", s(r.ApplyCall))
	row("apply → all placed", "%s", s(r.AllPlaced))
	row("apply → all running", "%s", s(r.AllRunning))
	row("tasks/s", "%.0f", r.TasksPerSecond())
	row("placements/s", "%.0f (%0.f placements)", r.PlacementsPerSecond(), r.Placements)
	row("etcd txns", "%.0f committed, %.0f conflict, %.0f error", r.EtcdTxns["committed"], r.EtcdTxns["conflict"], r.EtcdTxns["error"])
	row("etcd revisions", "%d", r.EtcdRevisions)
	row("etcd db size", "%s → %s (%s in use)", mib(r.DBBefore), mib(r.DBAfter), mib(r.DBInUseAfter))
	if r.Tasks > 0 && r.EtcdRevisions > 0 {
		row("etcd per task", "%.2f revisions, %.0f bytes of db growth", float64(r.EtcdRevisions)/float64(r.Tasks), float64(r.DBAfter-r.DBBefore)/float64(r.Tasks))
	}
	row("server memory", "peak %s, %s at the end", mib(r.ServerPeak), mib(r.ServerRSS))
	row("CPU during apply", "server %s (%.3f s per 1,000 tasks), pools %s", s(r.ServerCPUApply), r.ServerCPUPer1kTasks(), s(r.PoolsCPUApply))
	row("CPU whole run", "server %s, pools %s", s(r.ServerCPU), s(r.PoolsCPU))
	if d := r.Detection; d != nil {
		row("killed nodes", "%d", d.Nodes)
		row("kill → unreachable", "p50 %s, max %s", s(d.Unreachable.p50()), s(d.Unreachable.max()))
		row("kill → down", "p50 %s, max %s", s(d.Down.p50()), s(d.Down.max()))
		row("kill → tasks replaced", "%s", s(d.Replaced))
	}
	return tw.Flush()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Run starts a cluster as cfg says, applies the tasks, waits for them to
// run, kills the victim pool, and reports what it measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	c, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r, err := c.Measure(ctx)
	if err != nil {
		return r, fmt.Errorf("%w (logs in %s; -keep leaves them)", err, c.Dir())
	}
	return r, nil
}

// profileServer writes the server's CPU profile over the next
// Config.ServerProfileSeconds to Config.ServerCPUProfile, when set; the
// channel gives the outcome once it is written.
func (c *Cluster) profileServer(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	if c.cfg.ServerCPUProfile == "" {
		done <- nil
		return done
	}
	url := strings.TrimSuffix(c.srv.metricsURL, "/metrics") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", c.cfg.ServerProfileSeconds)
	go func() {
		done <- func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
			f, err := os.Create(c.cfg.ServerCPUProfile)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}()
	}()
	return done
}

// snapshot is the cost counters at one moment.
type snapshot struct {
	m                metrics
	rev, db, dbInUse int64
	server           procStat
	pools            time.Duration
}

func (c *Cluster) snapshot(ctx context.Context) (snapshot, error) {
	var s snapshot
	var err error
	if s.m, err = scrape(ctx, c.http, c.srv.metricsURL); err != nil {
		return s, err
	}
	st, err := c.etcd.Status(ctx, c.srv.etcdClients[0])
	if err != nil {
		return s, fmt.Errorf("etcd status: %w", err)
	}
	s.rev, s.db, s.dbInUse = st.Header.GetRevision(), st.DbSize, st.DbSizeInUse
	if s.server, err = readProc(c.srv.pid()); err != nil {
		return s, fmt.Errorf("server process: %w", err)
	}
	s.pools = c.poolsCPU()
	return s, nil
}

// settle waits, at most Config.Settle, until the server and the pools
// together use less than Config.SettleCores over a few seconds: the gossip of a
// thousand nodes joining takes minutes to die down on a small machine,
// and an apply in the middle of it measures the join as much as the
// apply. It returns the cores busy over the last window.
func (c *Cluster) settle(ctx context.Context) (float64, error) {
	const window = 3 * time.Second
	cpu := func() time.Duration {
		sum := c.poolsCPU()
		if st, err := readProc(c.srv.pid()); err == nil {
			sum += st.CPU
		}
		return sum
	}
	deadline := time.Now().Add(c.cfg.Settle)
	t := time.NewTicker(window)
	defer t.Stop()
	last, lastAt := cpu(), time.Now()
	lastShown := lastAt
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
		now, at := cpu(), time.Now()
		busy := (now - last).Seconds() / at.Sub(lastAt).Seconds()
		last, lastAt = now, at
		if busy < c.cfg.SettleCores || at.After(deadline) {
			return busy, nil
		}
		if at.Sub(lastShown) >= 15*time.Second {
			c.progress("settling: %.2f cores busy", busy)
			lastShown = at
		}
	}
}

// Measure applies the tasks, waits for them all to run, then kills the
// victim pool (when there is one), and reports.
func (c *Cluster) Measure(ctx context.Context) (*Report, error) {
	r := &Report{Nodes: c.cfg.Nodes, Tasks: c.cfg.Tasks, Services: c.cfg.Services, Pools: c.cfg.Pools, AgentsReady: c.agentsReady}
	if !c.cfg.NoPrePull {
		start := time.Now()
		if err := c.PrePull(ctx); err != nil {
			return nil, err
		}
		r.PrePull = time.Since(start)
		c.progress("every node holds %s after %s", DefaultImage, r.PrePull.Round(time.Millisecond))
	}
	if c.cfg.Settle > 0 {
		start := time.Now()
		busy, err := c.settle(ctx)
		if err != nil {
			return nil, err
		}
		r.Settled, r.SettledCPU = time.Since(start), busy
		c.progress("settled after %s, %.2f cores busy", r.Settled.Round(time.Millisecond), busy)
	}
	before, err := c.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	placed0 := before.m.get("berth_placements_total", "")
	profiled := c.profileServer(ctx)
	defer func() {
		if err := <-profiled; err != nil {
			c.progress("server CPU profile: %v", err)
		}
	}()
	start := time.Now()
	if err := c.Apply(ctx); err != nil {
		return nil, err
	}
	r.ApplyCall = time.Since(start)
	c.progress("applied %d tasks in %d services (call %s)", c.cfg.Tasks, c.cfg.Services, r.ApplyCall.Round(time.Millisecond))
	lastShown := time.Now()
	err = c.poll(ctx, c.cfg.RunningTimeout, func(m metrics) (bool, string) {
		placed := m.get("berth_placements_total", "") - placed0
		running := int(m.get("berth_tasks", `state="running"`))
		if r.AllPlaced == 0 && placed >= float64(c.cfg.Tasks) {
			r.AllPlaced = time.Since(start)
		}
		if time.Since(lastShown) >= 5*time.Second {
			c.progress("%.0f placed, %d running", placed, running)
			lastShown = time.Now()
		}
		return running == c.cfg.Tasks, fmt.Sprintf("%.0f of %d tasks placed, %d running", placed, c.cfg.Tasks, running)
	})
	if err != nil {
		return r, err
	}
	r.AllRunning = time.Since(start)
	if r.AllPlaced == 0 {
		r.AllPlaced = r.AllRunning
	}
	c.progress("all %d tasks running after %s", c.cfg.Tasks, r.AllRunning.Round(time.Millisecond))
	after, err := c.snapshot(ctx)
	if err != nil {
		return r, err
	}
	r.Placements = after.m.get("berth_placements_total", "") - placed0
	r.EtcdTxns = map[string]float64{}
	for _, res := range []string{"committed", "conflict", "error"} {
		label := `result="` + res + `"`
		r.EtcdTxns[res] = after.m.get("berth_etcd_txn_duration_seconds_count", label) - before.m.get("berth_etcd_txn_duration_seconds_count", label)
	}
	r.EtcdRevisions = after.rev - before.rev
	r.DBBefore, r.DBAfter, r.DBInUseAfter = before.db, after.db, after.dbInUse
	r.ServerCPUApply = after.server.CPU - before.server.CPU
	r.PoolsCPUApply = after.pools - before.pools

	if c.victim != nil {
		if r.Detection, err = c.KillVictims(ctx, 5*time.Minute); err != nil {
			return r, err
		}
	}
	end, err := readProc(c.srv.pid())
	if err != nil {
		return r, fmt.Errorf("server process: %w", err)
	}
	r.ServerPeak, r.ServerRSS, r.ServerCPU = end.HWM, end.RSS, end.CPU
	for _, p := range c.pools {
		if p == c.victim {
			r.PoolsCPU += p.cpu()
		} else if ps, err := readProc(p.cmd.Process.Pid); err == nil {
			r.PoolsCPU += ps.CPU
		}
	}
	return r, nil
}
