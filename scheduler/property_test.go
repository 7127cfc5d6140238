package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/constraint"
	"github.com/berthproject/berth/api/nodestate"
)

// usage is an independent tally of what tasks hold on each node, to check
// plans against.
type usage struct {
	nodes    map[string]*berthv1.Node
	cpu, mem map[string]int64
	// service counts tasks per service, then per node.
	service map[string]map[string]int
}

func newUsage(snap Snapshot) *usage {
	u := &usage{nodes: make(map[string]*berthv1.Node), cpu: make(map[string]int64), mem: make(map[string]int64), service: make(map[string]map[string]int)}
	for _, n := range snap.Nodes {
		u.nodes[n.GetMeta().GetId()] = n
	}
	for _, t := range snap.Tasks {
		if _, ok := u.nodes[t.GetNodeId()]; ok && t.GetStatus().GetState() <= berthv1.TaskState_TASK_STATE_RUNNING {
			u.add(t, t.GetNodeId())
		}
	}
	return u
}

func (u *usage) add(t *berthv1.Task, nodeID string) {
	u.cpu[nodeID] += t.GetSpec().GetReservations().GetMilliCpus()
	u.mem[nodeID] += t.GetSpec().GetReservations().GetMemoryBytes()
	svc := serviceKey(t)
	if u.service[svc] == nil {
		u.service[svc] = make(map[string]int)
	}
	u.service[svc][nodeID]++
}

// violation returns what forbids task t on node nodeID now, or "".
func (u *usage) violation(t *berthv1.Task, nodeID string) string {
	n := u.nodes[nodeID]
	spec := t.GetSpec()
	if !nodestate.Ready(n) {
		return "node not ready"
	}
	if a := n.GetAvailability(); a == berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE || a == berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN {
		return "node not active"
	}
	cs, err := constraint.ParseAll(spec.GetPlacement().GetConstraints())
	if err != nil {
		return err.Error()
	}
	for _, c := range cs {
		if !c.Match(n) {
			return "constraint " + c.String()
		}
	}
	if ps := spec.GetPlacement().GetPlatforms(); len(ps) > 0 {
		have := newPlatform(n.GetPlatform().GetOs(), n.GetPlatform().GetArchitecture())
		if !slices.ContainsFunc(ps, func(p *berthv1.Platform) bool { return newPlatform(p.GetOs(), p.GetArchitecture()).matches(have) }) {
			return "platform"
		}
	}
	if need := spec.GetReservations().GetMilliCpus(); need > 0 && u.cpu[nodeID]+need > n.GetCapacity().GetMilliCpus() {
		return "cpu over-committed"
	}
	if need := spec.GetReservations().GetMemoryBytes(); need > 0 && u.mem[nodeID]+need > n.GetCapacity().GetMemoryBytes() {
		return "memory over-committed"
	}
	if m := spec.GetPlacement().GetMaxReplicasPerNode(); m > 0 && uint64(u.service[serviceKey(t)][nodeID]) >= m {
		return "max replicas per node exceeded"
	}
	return ""
}

func TestScheduleNeverBreaksAFilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for iter := range 2000 {
		snap, pending := randomCluster(rng)
		plan := Schedule(snap, pending)
		if got := len(plan.Assignments) + len(plan.Unplaced); got != len(pending) {
			t.Fatalf("iteration %d: %d tasks in the plan, want %d", iter, got, len(pending))
		}
		byID := make(map[string]*berthv1.Task)
		for _, tk := range pending {
			byID[tk.GetMeta().GetId()] = tk
		}
		u := newUsage(snap)
		for _, a := range plan.Assignments {
			tk := byID[a.TaskID]
			if v := u.violation(tk, a.NodeID); v != "" {
				t.Fatalf("iteration %d: task %s placed on %s: %s", iter, a.TaskID, a.NodeID, v)
			}
			u.add(tk, a.NodeID)
		}
	}
}

func TestScheduleSpreadsEvenlyOnEqualNodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 4))
	zones := []string{"eu", "us", "ap"}
	for iter := range 1000 {
		var snap Snapshot
		for i := range 1 + rng.IntN(20) {
			snap.Nodes = append(snap.Nodes, node(fmt.Sprintf("n%02d", i), labels("zone", zones[rng.IntN(len(zones))]),
				images([]string{"busybox"}[:rng.IntN(2)]...)))
		}
		// Other services' tasks only break ties.
		for k := range rng.IntN(30) {
			snap.Tasks = append(snap.Tasks, task(fmt.Sprintf("r%d", k), "other", running(snap.Nodes[rng.IntN(len(snap.Nodes))].GetMeta().GetId())))
		}
		byZone := rng.IntN(2) == 0
		var pending []*berthv1.Task
		for k := range rng.IntN(100) {
			tk := task(fmt.Sprintf("p%d", k), "web")
			if byZone {
				preferences("spread=node.labels.zone")(tk)
			}
			pending = append(pending, tk)
		}
		plan := Schedule(snap, pending)
		perNode := make(map[string]int)
		perZone := make(map[string]int)
		zoneOf := make(map[string]string)
		for _, n := range snap.Nodes {
			perNode[n.GetMeta().GetId()] = 0
			perZone[n.GetLabels()["zone"]] = 0
			zoneOf[n.GetMeta().GetId()] = n.GetLabels()["zone"]
		}
		for _, a := range plan.Assignments {
			perNode[a.NodeID]++
			perZone[zoneOf[a.NodeID]]++
		}
		if len(plan.Unplaced) > 0 {
			t.Fatalf("iteration %d: unplaced %v", iter, plan.Unplaced)
		}
		if !byZone {
			if spread := spreadOf(perNode); spread > 1 {
				t.Fatalf("iteration %d: per-node counts %v differ by %d", iter, perNode, spread)
			}
			continue
		}
		if spread := spreadOf(perZone); spread > 1 {
			t.Fatalf("iteration %d: per-zone counts %v differ by %d", iter, perZone, spread)
		}
		for _, z := range zones {
			inZone := make(map[string]int)
			for id, c := range perNode {
				if zoneOf[id] == z {
					inZone[id] = c
				}
			}
			if spread := spreadOf(inZone); spread > 1 {
				t.Fatalf("iteration %d: counts in zone %s %v differ by %d", iter, z, inZone, spread)
			}
		}
	}
}

// spreadOf is the largest count minus the smallest.
func spreadOf(counts map[string]int) int {
	if len(counts) == 0 {
		return 0
	}
	lo, hi := int(^uint(0)>>1), 0
	for _, c := range counts {
		lo, hi = min(lo, c), max(hi, c)
	}
	return hi - lo
}

// imbalance measures a service's spread: per preference level, outermost
// first, then per node, the sum of squared task counts. A move that evens
// the spread makes it lexicographically smaller.
func imbalance(nodes []*berthv1.Node, labelNames []string, perNode map[string]int) []int {
	var out []int
	for lvl := range labelNames {
		buckets := make(map[string]int)
		for _, n := range nodes {
			var key string
			for _, l := range labelNames[:lvl+1] {
				key += n.GetLabels()[l] + "\x00"
			}
			buckets[key] += perNode[n.GetMeta().GetId()]
		}
		sum := 0
		for _, c := range buckets {
			sum += c * c
		}
		out = append(out, sum)
	}
	sum := 0
	for _, c := range perNode {
		sum += c * c
	}
	return append(out, sum)
}

func TestRebalanceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 1))
	moved := 0
	for iter := range 2000 {
		snap, _ := randomCluster(rng)
		var service []*berthv1.Task
		for _, tk := range snap.Tasks {
			if tk.GetService() == "s0" {
				service = append(service, tk)
			}
		}
		limit := rng.IntN(8)
		moves := Rebalance(snap, service, limit)
		if len(moves) > limit {
			t.Fatalf("iteration %d: %d moves, limit %d", iter, len(moves), limit)
		}
		if len(moves) == 0 {
			continue
		}
		if strategyOf(service[0], snap.Strategy) == berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK {
			t.Fatalf("iteration %d: moves %v for a binpack service", iter, moves)
		}
		var labelNames []string
		for _, p := range service[0].GetSpec().GetPlacement().GetPreferences() {
			l, _ := parsePreference(p)
			labelNames = append(labelNames, l)
		}
		failures := make(map[string]int)
		for _, f := range snap.Failed {
			if f.GetService() == "s0" {
				failures[f.GetNodeId()]++
			}
		}
		u := newUsage(snap)
		perNode := make(map[string]int)
		for _, n := range snap.Nodes {
			perNode[n.GetMeta().GetId()] = 0
		}
		byID := make(map[string]*berthv1.Task)
		for _, tk := range service {
			byID[tk.GetMeta().GetId()] = tk
			perNode[tk.GetNodeId()]++
		}
		for _, m := range moves {
			tk, ok := byID[m.TaskID]
			if !ok || tk.GetNodeId() != m.FromNodeID {
				t.Fatalf("iteration %d: move %+v of a task not on its source, or moved twice", iter, m)
			}
			delete(byID, m.TaskID)
			if v := u.violation(tk, m.ToNodeID); v != "" {
				t.Fatalf("iteration %d: move %+v onto an ineligible node: %s", iter, m, v)
			}
			if failures[m.ToNodeID] >= repeatedFailures {
				t.Fatalf("iteration %d: move %+v onto a node where the service keeps failing", iter, m)
			}
			before := imbalance(snap.Nodes, labelNames, perNode)
			perNode[m.FromNodeID]--
			perNode[m.ToNodeID]++
			after := imbalance(snap.Nodes, labelNames, perNode)
			if slices.Compare(after, before) >= 0 {
				t.Fatalf("iteration %d: move %+v does not improve the spread: %v then %v", iter, m, before, after)
			}
			// Start-first: the source keeps holding the task.
			u.add(tk, m.ToNodeID)
			moved++
		}
	}
	t.Logf("%d moves checked", moved)
	if moved == 0 {
		t.Fatalf("no iteration moved a task; the generated clusters should need rebalancing")
	}
}
