package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// pickByScan is the plain definition of placement: rank every candidate
// that passes the usage filters and take the best. The heaps and scans of
// (*cluster).pick must give the same node every time.
func pickByScan(c *cluster, g *group) (int, string) {
	c.prepare(g, true)
	best := -1
	bestRank := make([]uint64, rankLen(g))
	k := make([]uint64, rankLen(g))
	for _, i := range g.cands.list {
		if !g.fitsUsage(&c.nodes[i]) {
			continue
		}
		c.rank(g, int(i), k)
		if best < 0 || rankLess(k, bestRank) {
			best = int(i)
			copy(bestRank, k)
		}
	}
	if best >= 0 {
		return best, ""
	}
	return -1, c.explain(g)
}

// randomCluster makes a small cluster with uneven nodes and a batch of
// pending tasks that exercise every filter and both strategies.
func randomCluster(rng *rand.Rand) (Snapshot, []*berthv1.Task) {
	var snap Snapshot
	zones := []string{"eu", "us", "ap"}
	archs := []string{"amd64", "arm64", "x86_64", ""}
	for i := range 1 + rng.IntN(30) {
		opts := []nodeOpt{
			labels("zone", zones[rng.IntN(len(zones))], "rack", fmt.Sprintf("r%d", rng.IntN(4))),
			capacity(int64(1000+rng.IntN(4)*1000), int64(1+rng.IntN(4))*gib),
			images([]string{"redis", "nginx"}[:rng.IntN(3)]...),
			func(n *berthv1.Node) {
				n.Platform = &berthv1.Platform{Os: "linux", Architecture: archs[rng.IntN(len(archs))]}
			},
		}
		if rng.IntN(10) == 0 {
			opts = append(opts, availability(berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN))
		}
		snap.Nodes = append(snap.Nodes, node(fmt.Sprintf("n%02d", i), opts...))
	}
	if rng.IntN(3) == 0 {
		snap.Strategy = berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK
	}
	services := make([][]taskOpt, 1+rng.IntN(6))
	for s := range services {
		opts := []taskOpt{image([]string{"redis", "nginx", "busybox"}[rng.IntN(3)])}
		if rng.IntN(2) == 0 {
			opts = append(opts, reserve(int64(rng.IntN(5))*250, int64(rng.IntN(4))*gib/2))
		}
		if rng.IntN(4) == 0 {
			opts = append(opts, constraints("node.labels.zone!="+zones[rng.IntN(3)]))
		}
		if rng.IntN(3) == 0 {
			opts = append(opts, preferences([]string{"spread=node.labels.zone", "node.labels.rack"}[:1+rng.IntN(2)]...))
		}
		if rng.IntN(4) == 0 {
			opts = append(opts, maxPerNode(uint64(1+rng.IntN(3))))
		}
		if rng.IntN(4) == 0 {
			opts = append(opts, runsOn("linux/"+archs[rng.IntN(2)]))
		}
		if rng.IntN(6) == 0 {
			opts = append(opts, publish(uint32(8000+rng.IntN(3)), "tcp", ""))
		}
		if rng.IntN(4) == 0 {
			opts = append(opts, strategy(berthv1.SchedulingStrategy(1+rng.IntN(2))))
		}
		services[s] = opts
	}
	for k := range rng.IntN(60) {
		s := rng.IntN(len(services))
		n := snap.Nodes[rng.IntN(len(snap.Nodes))].GetMeta().GetId()
		snap.Tasks = append(snap.Tasks, task(fmt.Sprintf("r%d", k), fmt.Sprintf("s%d", s), append(services[s][:len(services[s]):len(services[s])], running(n))...))
		if rng.IntN(5) == 0 {
			snap.Failed = append(snap.Failed, task(fmt.Sprintf("f%d", k), fmt.Sprintf("s%d", s), running(n)))
		}
	}
	var pending []*berthv1.Task
	for k := range 1 + rng.IntN(80) {
		s := rng.IntN(len(services))
		pending = append(pending, task(fmt.Sprintf("p%d", k), fmt.Sprintf("s%d", s), services[s]...))
	}
	return snap, pending
}

func TestScheduleMatchesFullScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for iter := range 3000 {
		snap, pending := randomCluster(rng)
		got := Schedule(snap, pending)
		want := schedule(snap, pending, pickByScan)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("iteration %d: Schedule() =\n  %+v\nfull scan gives\n  %+v", iter, got, want)
		}
	}
}

// TestScheduleMatchesFullScanAtScale checks the same on the benchmark's
// cluster, where load levels, shared candidate sets and many groups are
// in play.
func TestScheduleMatchesFullScanAtScale(t *testing.T) {
	for _, strategy := range []berthv1.SchedulingStrategy{
		berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD, berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK,
	} {
		snap, pending := generate(300, 3000, 3000)
		snap.Strategy = strategy
		// A label on every node with its own value makes more buckets than
		// are scanned one by one.
		for _, n := range snap.Nodes {
			n.Labels["host"] = n.GetMeta().GetId()
		}
		for k, tk := range pending {
			if k%7 == 0 {
				preferences("spread=node.labels.host")(tk)
			}
		}
		got := Schedule(snap, pending)
		want := schedule(snap, pending, pickByScan)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%v: Schedule() differs from a full scan", strategy)
		}
	}
}
