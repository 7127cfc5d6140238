package scheduler

import (
	"fmt"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// generate makes a cluster of nodes in three zones holding existing running
// tasks, and pending tasks for services of ten replicas each. The services
// mix what placement has to check: reservations, constraints, preferences,
// published ports and images some nodes hold.
func generate(nodes, existing, pending int) (Snapshot, []*berthv1.Task) {
	zones := []string{"eu", "us", "ap"}
	imageRefs := []string{"docker.io/library/redis:latest", "docker.io/library/nginx:latest", "registry.local/app:1"}
	var snap Snapshot
	for i := range nodes {
		snap.Nodes = append(snap.Nodes, node(fmt.Sprintf("node-%05d", i),
			labels("zone", zones[i%len(zones)], "rack", fmt.Sprintf("r%d", i%7)),
			capacity(1_000_000, 1<<50),
			images(imageRefs[:i%(len(imageRefs)+1)]...),
		))
	}
	service := func(i int) (string, []taskOpt) {
		name := fmt.Sprintf("svc-%d", i/10)
		opts := []taskOpt{image([]string{"redis", "nginx", "registry.local/app:1", "busybox"}[i/10%4])}
		switch i / 10 % 5 {
		case 0:
			opts = append(opts, reserve(10, 64<<20))
		case 1:
			opts = append(opts, constraints("node.labels.zone!=ap"))
		case 2:
			opts = append(opts, preferences("spread=node.labels.zone", "node.labels.rack"))
		case 3:
			opts = append(opts, publish(uint32(10000+i/10), "tcp", ""))
		}
		return name, opts
	}
	for i := range existing {
		name, opts := service(i)
		opts = append(opts, running(snap.Nodes[i%nodes].GetMeta().GetId()))
		snap.Tasks = append(snap.Tasks, task(fmt.Sprintf("run-%d", i), name, opts...))
	}
	var tasks []*berthv1.Task
	for i := range pending {
		name, opts := service(i)
		tasks = append(tasks, task(fmt.Sprintf("new-%d", i), name, opts...))
	}
	return snap, tasks
}

// existingPerNode is how many running tasks each node holds before the
// benchmarked call: a busy but realistic cluster.
const existingPerNode = 20

// BenchmarkSchedule measures placements per second over a matrix of cluster
// sizes and batch sizes. Every case mixes spread, constraints, preferences,
// reservations, published ports and image locality (see generate). The
// running tasks are counted in a Usage kept up to date between calls, as
// the orchestrator does.
func BenchmarkSchedule(b *testing.B) {
	for _, nodes := range []int{100, 1000, 5000, 10000} {
		for _, pending := range []int{1000, 10000, 100000} {
			b.Run(fmt.Sprintf("nodes=%d/pending=%d", nodes, pending), func(b *testing.B) {
				snap, tasks := generate(nodes, existingPerNode*nodes, pending)
				benchSchedule(b, withUsage(snap), tasks)
			})
		}
	}
}

// BenchmarkScheduleCountingTasks measures calls that count every running
// task of the snapshot themselves (no Usage), at 5,000 nodes.
func BenchmarkScheduleCountingTasks(b *testing.B) {
	for _, pending := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("nodes=5000/pending=%d", pending), func(b *testing.B) {
			snap, tasks := generate(5000, existingPerNode*5000, pending)
			benchSchedule(b, snap, tasks)
		})
	}
}

// withUsage moves the snapshot's running tasks into a Usage.
func withUsage(snap Snapshot) Snapshot {
	u := NewUsage()
	for _, t := range snap.Tasks {
		u.Update(t)
	}
	snap.Usage, snap.Tasks = u, nil
	return snap
}

// BenchmarkScheduleBinpack measures the binpack strategy on 5,000 nodes.
func BenchmarkScheduleBinpack(b *testing.B) {
	for _, pending := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("nodes=5000/pending=%d", pending), func(b *testing.B) {
			snap, tasks := generate(5000, existingPerNode*5000, pending)
			snap.Strategy = berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK
			benchSchedule(b, withUsage(snap), tasks)
		})
	}
}

func benchSchedule(b *testing.B, snap Snapshot, tasks []*berthv1.Task) {
	b.ReportAllocs()
	placed := 0
	for b.Loop() {
		placed += len(Schedule(snap, tasks).Assignments)
	}
	if placed == 0 {
		b.Fatalf("Schedule() placed nothing")
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkRebalance moves 100 tasks of a 1,000-task service crowded on
// ten of 5,000 nodes.
func BenchmarkRebalance(b *testing.B) {
	snap, _ := generate(5000, existingPerNode*5000, 0)
	var service []*berthv1.Task
	for i := range 1000 {
		tk := task(fmt.Sprintf("web-%d", i), "web", running(snap.Nodes[i%10].GetMeta().GetId()))
		service = append(service, tk)
		snap.Tasks = append(snap.Tasks, tk)
	}
	b.ReportAllocs()
	for b.Loop() {
		if moves := Rebalance(snap, service, 100); len(moves) != 100 {
			b.Fatalf("Rebalance() made %d moves, want 100", len(moves))
		}
	}
}
