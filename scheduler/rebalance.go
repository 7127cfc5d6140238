package scheduler

import (
	"cmp"
	"slices"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/volume"
)

// Move restarts one task on another node: the orchestrator starts a
// replacement on ToNodeID, then stops the task on FromNodeID.
type Move struct {
	TaskID, FromNodeID, ToNodeID string
}

// Rebalance returns at most limit moves that bring one replicated service
// toward an even spread, for `berth rebalance`. service are the service's
// running tasks; they must be in snap.Tasks (or counted by snap.Usage) too.
//
// Spread is judged over the service's placement preferences (taken from
// the first task), outermost label first, then over nodes: a move from
// node s to node t is made only when, at the first level where s and t
// fall in different buckets (or on the nodes themselves, when they share
// every bucket), t's count plus one is below s's. Each move so strictly
// improves the spread and never undoes an earlier one.
//
// Moves start the new task before stopping the old one, so a target must
// pass every filter for the task while the task still holds its resources
// on its source, and later moves see earlier ones holding both. Nodes where
// the service failed repeatedly are never targets.
//
// Sources are taken most loaded first (ties by node ID), their tasks in ID
// order, and each task goes to the best target by the spread ranking, so
// equal inputs give equal moves. A service whose strategy (its own, else
// snap.Strategy) is binpack is never rebalanced: packing is its intent.
// Nor is one with named volumes: its tasks stay where their data is.
func Rebalance(snap Snapshot, service []*berthv1.Task, limit int) []Move {
	if limit <= 0 || len(service) == 0 || len(snap.Nodes) == 0 {
		return nil
	}
	first := service[0]
	if strategyOf(first, snap.Strategy) == berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK || volume.HasNamed(first.GetSpec()) {
		return nil
	}
	state := &serviceState{}
	c := newCluster(snap, map[string]*serviceState{serviceKey(first): state}, nil)
	c.activate(state)

	groups := make(map[string]*group)
	lead := c.groupFor(first, snap.Strategy, groups)
	if lead.err != "" {
		return nil
	}
	c.prepare(lead, true)
	r := rebalancer{c: c, state: state, spread: lead.spread, groups: groups, strategy: snap.Strategy}

	// movable[i] are the tasks on node i that may move, in ID order.
	movable := make(map[int][]*berthv1.Task)
	for _, t := range service {
		i, ok := c.byID[t.GetNodeId()]
		if !ok || t.GetStatus().GetState() > berthv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		movable[i] = append(movable[i], t)
	}
	for _, ts := range movable {
		slices.SortFunc(ts, func(a, b *berthv1.Task) int { return cmp.Compare(a.GetMeta().GetId(), b.GetMeta().GetId()) })
	}

	var moves []Move
	for len(moves) < limit {
		t, from, to := r.next(movable)
		if t == nil {
			break
		}
		r.move(t, from, to)
		movable[from] = slices.DeleteFunc(movable[from], func(x *berthv1.Task) bool { return x == t })
		moves = append(moves, Move{TaskID: t.GetMeta().GetId(), FromNodeID: c.nodes[from].id, ToNodeID: c.nodes[to].id})
	}
	return moves
}

// rebalancer is the working state of one Rebalance call.
type rebalancer struct {
	c     *cluster
	state *serviceState
	// spread is nil when the service has no placement preferences.
	spread   *spreadCounts
	groups   map[string]*group
	strategy berthv1.SchedulingStrategy
}

// next returns the next move: a task, its node and its target; a nil task
// when no move improves the spread.
func (r *rebalancer) next(movable map[int][]*berthv1.Task) (*berthv1.Task, int, int) {
	sources := make([]int, 0, len(movable))
	for i, ts := range movable {
		if len(ts) > 0 {
			sources = append(sources, i)
		}
	}
	slices.SortFunc(sources, func(a, b int) int {
		if c := r.compareLoad(b, a); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	// Without preferences, a source needs a node two tasks below it.
	least := slices.Min(r.state.tasks)
	for _, s := range sources {
		if r.spread == nil && r.state.tasks[s] < least+2 {
			break // sources are in descending order
		}
		var tried []*group
		for _, t := range movable[s] {
			g := r.c.groupFor(t, r.strategy, r.groups)
			if slices.Contains(tried, g) {
				continue // alike tasks have the same targets
			}
			tried = append(tried, g)
			if to := r.target(g, s); to >= 0 {
				return t, s, to
			}
		}
	}
	return nil, -1, -1
}

// compareLoad orders nodes by the service's count in each of their buckets,
// outermost first, then on the node.
func (r *rebalancer) compareLoad(a, b int) int {
	if r.spread != nil {
		for lvl, buckets := range r.spread.buckets.levels {
			if c := cmp.Compare(r.spread.counts[lvl][buckets[a]], r.spread.counts[lvl][buckets[b]]); c != 0 {
				return c
			}
		}
	}
	return cmp.Compare(r.state.tasks[a], r.state.tasks[b])
}

// improves reports whether moving one task from node s to node t makes the
// spread strictly better.
func (r *rebalancer) improves(s, t int) bool {
	if r.spread != nil {
		for lvl, buckets := range r.spread.buckets.levels {
			if bs, bt := buckets[s], buckets[t]; bs != bt {
				return r.spread.counts[lvl][bt]+1 < r.spread.counts[lvl][bs]
			}
		}
	}
	return r.state.tasks[t]+1 < r.state.tasks[s]
}

// target returns the best node to move a task of g to from node s, or -1.
func (r *rebalancer) target(g *group, s int) int {
	if g.err != "" {
		return -1
	}
	r.c.prepare(g, true)
	// Rank by the service's preferences, whatever the task's spec says.
	g.spread = r.spread
	best := -1
	rank, bestRank := make([]uint64, rankLen(g)), make([]uint64, rankLen(g))
	for _, x := range g.cands.list {
		i := int(x)
		if i == s || !r.improves(s, i) || r.c.failedBit(g, i) != 0 || !g.fitsUsage(&r.c.nodes[i]) {
			continue
		}
		r.c.rank(g, i, rank)
		if best < 0 || rankLess(rank, bestRank) {
			best = i
			copy(bestRank, rank)
		}
	}
	return best
}

// move records task t starting on node to while it still runs on node
// from: to takes its resources, and the spread counts it on to only.
func (r *rebalancer) move(t *berthv1.Task, from, to int) {
	g := r.c.groupFor(t, r.strategy, r.groups)
	r.c.assign(g, to)
	r.state.tasks[from]--
	for _, sc := range r.state.spreads {
		sc.add(from, -1)
	}
}
