// Package scheduler places tasks on nodes. It is pure code: a snapshot of
// the cluster and the pending tasks go in, a plan comes out. It reads no
// store, no clock and no network, so the leader's orchestrator, the tests
// and the benchmarks all drive it the same way.
//
// Placement runs in two steps, like a sieve and a ranking:
//
//   - Filters rule nodes out (not ready, paused or drained, constraint not
//     met, not enough CPU or memory, host port taken). Each filter counts
//     the nodes it ruled out, which gives a task that fits nowhere a reason
//     users can act on: "no suitable node (insufficient memory on 3 nodes,
//     constraint node.labels.zone==eu on 2 nodes)".
//   - The remaining nodes are ranked, best first, by: not a node where
//     the service failed repeatedly of late; spread of the
//     service's tasks over the values of each placement preference label;
//     fewest tasks of the same service on the node; the node already holds
//     the task's image; fewest tasks in total; node ID, so that equal
//     inputs give equal plans.
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
	// Failed are tasks that failed recently: a node where a service's tasks
	// failed repeatedFailures times or more is that service's last choice.
	Failed []*berthv1.Task
}

// repeatedFailures is how many recent failures of a service on a node make
// placement prefer other nodes for it.
const repeatedFailures = 2

// Assignment places one task on one node.
type Assignment struct {
	TaskID, NodeID string
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
// (resources, ports, spread).
//
// A pending task whose NodeId is already set (global mode: the orchestrator
// picks the node) is only checked against the filters on that node: it is
// assigned to it, or left unplaced with the reason.
//
// A pending task that also appears in snap.Tasks (same ID) is counted once,
// as pending, so that it does not compete with itself for resources.
//
// The cost is linear in nodes × pending tasks plus the snapshot's tasks:
// usage is counted once per call and updated as tasks are placed.
func Schedule(snap Snapshot, pending []*berthv1.Task) Plan {
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

	c := newCluster(snap, pending)
	groups := make(map[string]*group)
	for _, t := range pending {
		id := t.GetMeta().GetId()
		g := c.groupFor(t, groups)
		if g.err != "" {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: id, Reason: g.err})
			continue
		}
		var (
			node   int
			reason string
		)
		if preset := t.GetNodeId(); preset != "" {
			node, reason = c.checkPreset(g, preset)
		} else {
			node, reason = c.pick(g)
		}
		if node < 0 {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: id, Reason: reason})
			continue
		}
		c.assign(g, node)
		plan.Assignments = append(plan.Assignments, Assignment{TaskID: id, NodeID: c.nodes[node].id})
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
	n := &c.nodes[i]
	for _, fs := range [][]filter{g.pipeline.node, g.pipeline.usage} {
		for _, f := range fs {
			if !f.passes(n) {
				return -1, fmt.Sprintf("node %s is not suitable (%s)", nodeID, f.explain(1))
			}
		}
	}
	return i, ""
}

// pick returns the index of the best node for the next task of g, or -1
// and the reason no node fits.
func (c *cluster) pick(g *group) (int, string) {
	c.prepareCandidates(g)
	failures := g.usageFailures
	clear(failures)
	best := -1
	for _, i := range g.candidates {
		n := &c.nodes[i]
		fits := true
		for k, f := range g.pipeline.usage {
			if !f.passes(n) {
				failures[k]++
				fits = false
				break
			}
		}
		// Candidates are visited in node ID order and only a strictly
		// better node replaces the best so far, so ties go to the lowest
		// ID.
		if fits && (best < 0 || c.better(g, i, best)) {
			best = i
		}
	}
	if best >= 0 {
		return best, ""
	}
	return -1, noSuitableNode(g, failures)
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
		if g.nodeFailures[k] > 0 {
			counts = append(counts, count{f, g.nodeFailures[k]})
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

// better reports whether node a ranks above node b for the next task of g.
func (c *cluster) better(g *group, a, b int) bool {
	if g.failures != nil {
		if fa, fb := g.failures[a] >= repeatedFailures, g.failures[b] >= repeatedFailures; fa != fb {
			return fb
		}
	}
	if g.spread != nil {
		for lvl, buckets := range g.spread.buckets.levels {
			ca, cb := g.spread.counts[lvl][buckets[a]], g.spread.counts[lvl][buckets[b]]
			if ca != cb {
				return ca < cb
			}
		}
	}
	if sa, sb := g.serviceTasks[a], g.serviceTasks[b]; sa != sb {
		return sa < sb
	}
	if g.hasImage != nil {
		if ia, ib := g.hasImage[a], g.hasImage[b]; ia != ib {
			return ia
		}
	}
	if ta, tb := c.nodes[a].tasks, c.nodes[b].tasks; ta != tb {
		return ta < tb
	}
	return a < b
}
