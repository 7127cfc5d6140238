package orchestrator

import (
	"slices"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/slot"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
)

// place assigns pending tasks to nodes, and tells those that fit nowhere,
// or whose dependencies are not ready, why: the tasks w creates are changed
// in place, the stored ones through changes added to w.
func (o *Orchestrator) place(w *writes) {
	snap, pending := o.snapshot()
	// A task this pass already stops or removes is not placed: one
	// transaction may change a key only once.
	pending = slices.DeleteFunc(pending, func(t *berthv1.Task) bool { return w.seen[t.GetMeta().GetId()] })
	created := make(map[string]*berthv1.Task, len(w.creates))
	for _, t := range w.creates {
		created[t.GetMeta().GetId()] = t
	}
	// Stored tasks first, oldest first, then the new ones in the order
	// they were made: the order they get their addresses in.
	sortOldestFirst(pending)
	pending = append(pending, w.creates...)
	if len(pending) == 0 {
		return
	}
	byID := make(map[string]*berthv1.Task, len(pending))
	for _, t := range pending {
		byID[t.GetMeta().GetId()] = t
	}
	pending, unaddressed, given := o.address(pending, created)
	pending, held := o.holdForDependencies(pending)
	held = append(held, unaddressed...)
	sortOldestFirst(pending)
	plan := scheduler.Schedule(snap, pending)
	now := o.now()
	// A stored task's new addresses are written with its placement, or
	// with the reason it waits.
	assign := func(t *berthv1.Task, node string, ports []*berthv1.PortBinding) bool {
		if t.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_PENDING {
			return false
		}
		withNetworks(t, given)
		t.NodeId = node
		// The ports of its spec's port ranges, which its agent publishes.
		t.HostPorts = ports
		return taskstate.Set(t, berthv1.TaskState_TASK_STATE_ASSIGNED, "", now)
	}
	wait := func(t *berthv1.Task, reason string) bool {
		if t.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_PENDING {
			return false
		}
		addressed := withNetworks(t, given)
		return taskstate.Set(t, berthv1.TaskState_TASK_STATE_PENDING, reason, now) || addressed
	}
	for _, a := range plan.Assignments {
		node, ports := a.NodeID, a.HostPorts
		w.placed = append(w.placed, byID[a.TaskID])
		if w.volumeKeys == nil {
			w.volumeKeys = map[string]bool{}
		}
		vols := o.volumeRecords(byID[a.TaskID], node, now, w.volumeKeys)
		if t, ok := created[a.TaskID]; ok {
			assign(t, node, ports)
			if len(vols) > 0 {
				if w.volumes == nil {
					w.volumes = map[string][]volumeRecord{}
				}
				w.volumes[a.TaskID] = vols
			}
			continue
		}
		t := byID[a.TaskID]
		change := store.Change{Key: taskKey(t), Current: t, Apply: func(obj store.Object) bool {
			return assign(obj.(*berthv1.Task), node, ports)
		}}
		if len(vols) > 0 {
			w.placements = append(w.placements, placement{change: change, volumes: vols})
			continue
		}
		w.changes = append(w.changes, change)
	}
	o.unplacedReplacements(plan.Unplaced, byID, w)
	o.unplacedReplacements(unaddressed, byID, w)
	for _, u := range append(plan.Unplaced, held...) {
		reason := u.Reason
		if t, ok := created[u.TaskID]; ok {
			wait(t, reason)
			continue
		}
		t := byID[u.TaskID]
		if (t.GetStatus().GetMessage() == reason && given[u.TaskID] == nil) || w.seen[u.TaskID] {
			continue
		}
		w.changes = append(w.changes, store.Change{Key: taskKey(t), Current: t, Apply: func(obj store.Object) bool {
			return wait(obj.(*berthv1.Task), reason)
		}})
	}
	if len(plan.Unplaced) > 0 {
		o.log.Debug("tasks wait for a node", "count", len(plan.Unplaced), "first", describe(byID[plan.Unplaced[0].TaskID]), "reason", plan.Unplaced[0].Reason)
	}
}

// snapshot is what placement reads of the cluster, with the tasks waiting
// for a node. Placed tasks hold their room until they have stopped, so a
// start-first replacement never counts on the room of the task it
// replaces.
func (o *Orchestrator) snapshot() (scheduler.Snapshot, []*berthv1.Task) {
	snap := scheduler.Snapshot{
		Nodes:    o.cache.Nodes(),
		Usage:    o.index.usage,
		Failed:   o.index.recentFailures(o.now().Add(-failureMemory)),
		Strategy: o.cache.Settings().GetStrategy(),
		Volumes:  o.cache,
	}
	pending := make([]*berthv1.Task, 0, len(o.index.pending))
	for _, t := range o.index.pending {
		pending = append(pending, t)
	}
	return snap, pending
}

// unplacedReplacements handles the replacements started beside the task
// they replace that no node can take now. An update's or a drain's falls
// back to stop-first: the old task stops, which may free the room the new
// one needs. A rebalance's is dropped: a rebalance never lowers the
// running count.
func (o *Orchestrator) unplacedReplacements(unplaced []scheduler.Unplaced, byID map[string]*berthv1.Task, w *writes) {
	var dropped map[string]bool
	for _, u := range unplaced {
		t := byID[u.TaskID]
		if t == nil || t.Replaces == "" {
			continue
		}
		if t.ReplaceCause == berthv1.ReplaceCause_REPLACE_CAUSE_REBALANCE {
			if dropped == nil {
				dropped = map[string]bool{}
			}
			dropped[u.TaskID] = true
			o.rebalanceBlocked(t, u.Reason, w)
			continue
		}
		if old, ok := o.cache.Task(t.Replaces); ok && taskstate.Active(old) {
			w.shutdown(old, "stopped before its replacement starts, since no node can run both: "+u.Reason)
		}
	}
	if dropped == nil {
		return
	}
	w.creates = slices.DeleteFunc(w.creates, func(t *berthv1.Task) bool { return dropped[t.GetMeta().GetId()] })
	for id := range dropped {
		// A dropped task is never written: its addresses are free.
		o.addrs.Release(id)
		if t, stored := o.cache.Task(id); stored {
			w.shutdown(t, "rebalance cancelled: no node can take it now")
		}
	}
}

func sortOldestFirst(ts []*berthv1.Task) {
	slot.SortNewestFirst(ts)
	for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
		ts[i], ts[j] = ts[j], ts[i]
	}
}

// failureMemory is how long a task's failure on a node weighs against
// placing its service there again.
const failureMemory = 5 * time.Minute

// recentFailure reports whether t failed (or was rejected) on its node
// after since, while it was meant to run.
func recentFailure(t *berthv1.Task, since time.Time) bool {
	st := t.GetStatus().GetState()
	return t.NodeId != "" && t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING &&
		(st == berthv1.TaskState_TASK_STATE_FAILED || st == berthv1.TaskState_TASK_STATE_REJECTED) &&
		t.GetStatus().GetTimestamp().AsTime().After(since)
}
