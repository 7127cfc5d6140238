package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/cli/config"
)

const recoveryReplicas = 10

// BenchmarkRecoveryKill kills one container of a 10-replica service spread
// over two agents, 10 rounds (each a different slot, so no backoff
// applies), and reports how long until the replacement runs: p50 and p99.
func BenchmarkRecoveryKill(b *testing.B) {
	c := newCluster(b)
	c.startAgent("alpha", "--cpus", "16", "--memory", "17179869184")
	c.startAgent("beta", "--cpus", "16", "--memory", "17179869184")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", fmt.Sprintf(benchCompose, recoveryReplicas)), "-p", "recover")
	c.waitRunning("recover/sleeper", recoveryReplicas, 2*time.Minute)
	cfg, err := config.Load(c.configPath)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := cfg.Dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	api := berthv1.NewClusterServiceClient(conn)

	var times []time.Duration
	for i := 0; i < b.N; i++ {
		for slot := uint64(1); slot <= recoveryReplicas; slot++ {
			times = append(times, killAndTime(b, c, api, slot))
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(times[(len(times)*99)/100].Milliseconds()), "p99-ms")
	c.mustBerth("delete", "recover")
}

// killAndTime kills the running container of slot and returns how long
// until another task of the slot runs.
func killAndTime(b *testing.B, c *cluster, api berthv1.ClusterServiceClient, slot uint64) time.Duration {
	var victim task
	for _, t := range c.waitRunning("recover/sleeper", recoveryReplicas, time.Minute) {
		if t.Slot == slot {
			victim = t
		}
	}
	pid, ok := runningPids(b, nodeID(b, filepath.Join(c.dir, "agent-"+victim.Node)))[victim.ID]
	if !ok {
		b.Fatalf("no running container for task %s on %s", victim.ID, victim.Node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch, err := api.Watch(ctx, &berthv1.WatchRequest{App: "recover"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
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
