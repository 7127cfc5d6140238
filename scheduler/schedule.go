// Package scheduler places tasks on nodes. It is pure code: a snapshot of
// the cluster and the pending tasks go in, a plan comes out. It reads no
// store, no clock and no network, so the leader's orchestrator, the tests
// and the benchmarks all drive it the same way.
//
// Placement runs in two steps, like a sieve and a ranking:
//
//   - Filters rule nodes out (not ready, paused or drained, constraint not
//     met, platform not supported, the service's per-node cap reached, not
//     enough CPU or memory, host port taken, no port of a host port range
//     free: a task of a range is given the lowest free one). Each filter
//     counts the nodes it ruled out, which gives a task that fits nowhere
//     a reason users can act on: "no suitable node (insufficient memory on 3 nodes,
//     constraint node.labels.zone==eu on 2 nodes)".
//   - The remaining nodes are ranked, best first, by the task's strategy:
//     its service's own, else the cluster's (Snapshot.Strategy), else
//     spread.
//
// Spread ranks by: not a node where the service failed repeatedly of late;
// spread of the service's tasks over the values of each placement
// preference label; fewest tasks of the same service on the node; the node
// already holds the task's image; fewest tasks in total; node ID, so that
// equal inputs give equal plans.
//
// Binpack fills nodes before using empty ones, leaving whole nodes free
// for large tasks: not a node where the service failed repeatedly; fullest
// first, by the reserved share of CPU plus the reserved share of memory;
// most tasks in total; the node holds the image; node ID.
//
// Tasks are placed one at a time, each seeing the ones placed before it, so
// a batch spreads exactly as well as tasks placed one by one. Ranking does
// not rescan every node per task: see ranking for how the order is kept.
package scheduler

import (
	"fmt"
	"sort"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Snapshot is the cluster state placement reads.
type Snapshot struct {
	Nodes []*berthv1.Node
	// Tasks are the tasks that hold resources now: assigned to a node and
	// not in a terminal state (desired running and observed <= running).
	Tasks []*berthv1.Task
	// Usage, when set, counts what the tasks on each node hold, kept up to
	// date by the caller: the tasks it counts are then left out of Tasks,
	// which may be empty. It is only read.
	Usage *Usage
	// Failed are tasks that failed recently: a node where a service's tasks
	// failed repeatedFailures times or more is that service's last choice.
	Failed []*berthv1.Task
	// Strategy is the cluster's default scheduling strategy, for services
	// that set none; unspecified means spread.
	Strategy berthv1.SchedulingStrategy
	// Volumes finds the records of named volumes: a replicated task whose
	// volume has a node runs there or waits for it. Nil pins nothing.
	Volumes VolumeLookup
}

// repeatedFailures is how many recent failures of a service on a node make
// placement prefer other nodes for it.
const repeatedFailures = 2

// Assignment places one task on one node.
type Assignment struct {
	TaskID, NodeID string
	// HostPorts are the host ports the task is given of its spec's port
	// ranges, in their order; nil when it has none.
	HostPorts []*berthv1.PortBinding
}

// Unplaced is a task that fits on no node, with the reason shown to users.
type Unplaced struct {
	TaskID, Reason string
}

// Plan is the outcome of one Schedule call.
type Plan struct {
	Assignments []Assignment
	Unplaced    []Unplaced
}

// reasonNoNodes is the reason given when the snapshot holds no node at all.
const reasonNoNodes = "no nodes in the cluster"

// Schedule places the pending tasks in order. It never mutates its inputs.
// Tasks placed earlier in the same call count when placing later ones
// (resources, ports, spread, per-node caps).
//
// A pending task whose NodeId is already set (global mode: the orchestrator
// picks the node) is only checked against the filters on that node: it is
// assigned to it, or left unplaced with the reason.
//
// A replicated task whose named volume is on a node (snap.Volumes, or a
// task placed earlier in the call with the same volume) is only checked
// against that node: it is assigned to it, or left unplaced with "waiting
// for node n2, which holds volume web_db-data.1". Such tasks are placed
// before the others, which have a choice of node.
//
// A pending task that also appears in snap.Tasks (same ID) is counted once,
// as pending, so that it does not compete with itself for resources.
//
// The snapshot is counted once per call. Each group of alike tasks then
// costs about one pass over the nodes that pass its node filters (less for
// spread without preferences), and each task a few heap operations.
func Schedule(snap Snapshot, pending []*berthv1.Task) Plan {
	return schedule(snap, pending, (*cluster).pick)
}

// schedule is Schedule with the node picker as a parameter, so that tests
// can check the fast picker against a plain scan of every node.
func schedule(snap Snapshot, pending []*berthv1.Task, pick func(*cluster, *group) (int, string)) Plan {
	var plan Plan
	if len(pending) == 0 {
		return plan
	}
	if len(snap.Nodes) == 0 {
		for _, t := range pending {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.GetMeta().GetId(), Reason: reasonNoNodes})
		}
		return plan
	}

	services := make(map[string]*serviceState)
	skip := make(map[string]struct{}, len(pending))
	for _, t := range pending {
		if id := t.GetMeta().GetId(); id != "" {
			skip[id] = struct{}{}
		}
		svc := serviceKey(t)
		s, ok := services[svc]
		if !ok {
			s = &serviceState{}
			services[svc] = s
		}
		s.remaining++
	}
	c := newCluster(snap, services, skip)

	// Group every task first, so that a group knows when its last task is
	// done and can drop its ranking.
	groups := make(map[string]*group)
	taskGroups := make([]*group, len(pending))
	for k, t := range pending {
		g := c.groupFor(t, snap.Strategy, groups)
		g.remaining++
		taskGroups[k] = g
	}
	order, pins := c.pinnedFirst(pending)
	for n := range pending {
		k := n
		if order != nil {
			k = order[n]
		}
		t, g := pending[k], taskGroups[k]
		pin, pinned := pins[k]
		if !pinned && t.GetNodeId() == "" {
			// A task placed earlier in this call may hold its volume now.
			pin = c.pinOf(t)
		}
		id := t.GetMeta().GetId()
		var (
			node   int
			reason string
		)
		switch {
		case pin.conflict != "":
			node, reason = -1, pin.conflict
		case pin.nodeID != "":
			node, reason = c.placePinned(g, pin)
		case g.err != "":
			node, reason = -1, g.err
		case t.GetNodeId() != "":
			c.prepare(g, false)
			node, reason = c.checkPreset(g, t.GetNodeId())
		default:
			node, reason = pick(c, g)
		}
		if node < 0 {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: id, Reason: reason})
		} else {
			ports := c.assign(g, node)
			c.recordVolumes(t, node)
			plan.Assignments = append(plan.Assignments, Assignment{TaskID: id, NodeID: c.nodes[node].id, HostPorts: ports})
		}
		c.done(g)
	}
	return plan
}

// checkPreset runs every filter of g on the node the orchestrator chose. It
// returns the node's index, or -1 and the reason.
func (c *cluster) checkPreset(g *group, nodeID string) (int, string) {
	i, ok := c.byID[nodeID]
	if !ok {
		return -1, fmt.Sprintf("node %s is not in the cluster", nodeID)
	}
	if f := c.failingFilter(g, i); f != nil {
		return -1, fmt.Sprintf("node %s is not suitable (%s)", nodeID, f.explain(1))
	}
	return i, ""
}

// failingFilter returns the first filter of g that node i fails, or nil.
func (c *cluster) failingFilter(g *group, i int) filter {
	n := &c.nodes[i]
	for _, fs := range [][]filter{g.pipeline.node, g.pipeline.usage} {
		for _, f := range fs {
			if !f.passes(n) {
				return f
			}
		}
	}
	return nil
}

// noSuitableNode explains, per filter, how many nodes each ruled out: the
// biggest obstacle first, then in pipeline order.
func noSuitableNode(g *group, usageFailures []int) string {
	type count struct {
		f     filter
		nodes int
	}
	var counts []count
	for k, f := range g.pipeline.node {
		if g.cands.failures[k] > 0 {
			counts = append(counts, count{f, g.cands.failures[k]})
		}
	}
	for k, f := range g.pipeline.usage {
		if usageFailures[k] > 0 {
			counts = append(counts, count{f, usageFailures[k]})
		}
	}
	sort.SliceStable(counts, func(a, b int) bool { return counts[a].nodes > counts[b].nodes })
	parts := make([]string, len(counts))
	for k, ct := range counts {
		parts[k] = ct.f.explain(ct.nodes)
	}
	return "no suitable node (" + strings.Join(parts, ", ") + ")"
}
