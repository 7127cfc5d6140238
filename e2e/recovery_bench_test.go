package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime/containerd"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
)

const recoveryReplicas = 10

// BenchmarkRecoveryKill kills one container of a 10-replica service spread
// over two agents, 10 rounds (each a different slot, so no backoff
// applies), and reports how long until the replacement runs: p50 and p99.
func BenchmarkRecoveryKill(b *testing.B) {
	benchRecovery(b, fmt.Sprintf(benchCompose, recoveryReplicas), "recover", func(c *cluster, victim task) { c.killTask(victim) })
}

// benchRecovery runs app from compose on two agents and times, b.N times
// over every slot, how long a slot takes to run again after breakTask.
func benchRecovery(b *testing.B, compose, app string, breakTask func(*cluster, task)) {
	c := newCluster(b)
	c.startAgent("alpha", "--cpus", "16", "--memory", "17179869184")
	c.startAgent("beta", "--cpus", "16", "--memory", "17179869184")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", compose), "-p", app)
	api := benchAPI(b, c)
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		for slot := uint64(1); slot <= recoveryReplicas; slot++ {
			times = append(times, recoverAndTime(b, c, api, app, slot, func(victim task) { breakTask(c, victim) }))
		}
	}
	reportPercentiles(b, times)
	c.mustBerth("delete", app)
}

// benchAPI connects to the cluster's API.
func benchAPI(b *testing.B, c *cluster) berthv1.ClusterServiceClient {
	cfg, err := clientconfig.Load(c.configPath)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := cfg.Dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return berthv1.NewClusterServiceClient(conn)
}

// recoverAndTime waits until every task of app runs, breaks the task of
// slot, and returns how long until another task of the slot runs.
func recoverAndTime(b *testing.B, c *cluster, api berthv1.ClusterServiceClient, app string, slot uint64, breakTask func(task)) time.Duration {
	var victim task
	for _, t := range c.waitRunning(app, recoveryReplicas, time.Minute) {
		if t.Slot == slot {
			victim = t
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch, err := api.Watch(ctx, &berthv1.WatchRequest{App: app})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	breakTask(victim)
	for {
		ev, err := watch.Recv()
		if err != nil {
			b.Fatalf("waiting for slot %d to recover: %v", slot, err)
		}
		t := ev.GetTask()
		if t != nil && t.Slot == slot && t.GetMeta().GetId() != victim.ID && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			return time.Since(start)
		}
	}
}

// reportPercentiles reports the p50 and p99 of times.
func reportPercentiles(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(times[(len(times)*99)/100].Milliseconds()), "p99-ms")
}

const healthBenchCompose = `
services:
  checked:
    image: localhost/busybox:latest
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 200ms
      retries: 2
    deploy:
      replicas: %d
`

// BenchmarkRecoveryUnhealthy makes one task of a 10-replica service over
// two agents fail its health check (200 ms interval, 2 retries), 10 rounds
// (each a different slot), and reports how long until the replacement
// runs: p50 and p99.
func BenchmarkRecoveryUnhealthy(b *testing.B) {
	benchRecovery(b, fmt.Sprintf(healthBenchCompose, recoveryReplicas), "checked", func(c *cluster, victim task) { breakHealth(b, c, victim) })
}

// breakHealth removes the file the health check looks for.
func breakHealth(b *testing.B, c *cluster, victim task) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := containerd.New(ctx, containerd.Config{
		Namespace: namespace, Owner: nodeID(b, filepath.Join(c.dir, "agent-"+victim.Node)), StateDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	if res, err := rt.Exec(ctx, victim.ID, []string{"rm", "/tmp/ok"}); err != nil || res.ExitCode != 0 {
		b.Fatalf("breaking the health of %s: %v %+v", victim.ID, err, res)
	}
}

// BenchmarkRecoveryNode kills a node holding half of a 10-replica service
// (its agent frozen with SIGSTOP, so that its connections go silent as a
// dead machine's do, then its containers), 10 rounds, alternating
// nodes, and reports how long until every slot it held runs on the other
// node: p50 and p99. The grace is ten minutes, so only gossip can declare
// the node down.
func BenchmarkRecoveryNode(b *testing.B) {
	c := newCluster(b, withServerArgs("--node-down-grace", "10m"))
	capacity := []string{"--cpus", "16", "--memory", "17179869184"}
	agents := map[string]*proc{"alpha": c.startAgent("alpha", capacity...), "beta": c.startAgent("beta", capacity...)}
	c.importImage()
	api := benchAPI(b, c)
	compose := c.writeFile("compose.yaml", fmt.Sprintf(benchCompose, recoveryReplicas))
	var times []time.Duration
	for i := 0; i < b.N*recoveryReplicas; i++ {
		app := fmt.Sprintf("node%d", i)
		c.mustBerth("apply", "-f", compose, "-p", app)
		tasks := c.waitRunning(app, recoveryReplicas, time.Minute)
		victim := []string{"alpha", "beta"}[i%2]
		times = append(times, killNodeAndTime(b, c, api, app, agents[victim], victim, tasks))
		agents[victim] = c.startAgent(victim, capacity...)
		c.mustBerth("delete", app)
		eventually(b, time.Minute, func() (bool, string) {
			left := c.ps(app, "--all")
			return len(left) == 0, fmt.Sprintf("%s still has tasks: %+v", app, left)
		})
	}
	reportPercentiles(b, times)
}

// killNodeAndTime kills node's agent and containers, and returns how long
// until each slot of app that ran there runs on another node. The agent is
// frozen first: a killed agent's kernel would close its session at once,
// which tells the control plane the machine is up and the agent restarts.
func killNodeAndTime(b *testing.B, c *cluster, api berthv1.ClusterServiceClient, app string, agent *proc, node string, tasks []task) time.Duration {
	id := nodeID(b, filepath.Join(c.dir, "agent-"+node))
	lost := map[uint64]bool{}
	for _, t := range tasks {
		if t.Node == node {
			lost[t.Slot] = true
		}
	}
	if len(lost) == 0 {
		b.Fatalf("no task of %s runs on %s: %+v", app, node, tasks)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch, err := api.Watch(ctx, &berthv1.WatchRequest{App: app})
	if err != nil {
		b.Fatal(err)
	}
	pids := runningPids(b, id)
	start := time.Now()
	agent.freeze()
	defer agent.kill()
	for _, pid := range pids {
		syscall.Kill(int(pid), syscall.SIGKILL)
	}
	for len(lost) > 0 {
		ev, err := watch.Recv()
		if err != nil {
			b.Fatalf("waiting for %d slots of %s to run elsewhere: %v", len(lost), node, err)
		}
		t := ev.GetTask()
		if t != nil && t.NodeId != id && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			delete(lost, t.Slot)
		}
	}
	return time.Since(start)
}
