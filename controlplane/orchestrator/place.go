package orchestrator

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
)

// place assigns pending tasks to nodes, and tells those that fit nowhere,
// or whose dependencies are not ready, why: the tasks w creates are changed
// in place, the stored ones through changes added to w.
func (o *Orchestrator) place(w *writes) {
	var pending, holding, failed []*berthv1.Task
	recent := o.now().Add(-failureMemory)
	for _, t := range o.cache.Tasks() {
		switch {
		case recentFailure(t, recent):
			failed = append(failed, t)
		case !taskstate.Active(t):
		case t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_PENDING:
			// A task this pass already stops or removes is not placed:
			// one transaction may change a key only once.
			if !w.seen[t.GetMeta().GetId()] {
				pending = append(pending, t)
			}
		case t.NodeId != "":
			holding = append(holding, t)
		}
	}
	created := make(map[string]*berthv1.Task, len(w.creates))
	for _, t := range w.creates {
		created[t.GetMeta().GetId()] = t
	}
	pending = append(pending, w.creates...)
	if len(pending) == 0 {
		return
	}
	byID := make(map[string]*berthv1.Task, len(pending))
	for _, t := range pending {
		byID[t.GetMeta().GetId()] = t
	}
	pending, held := o.holdForDependencies(pending)
	sortOldestFirst(pending)
	plan := scheduler.Schedule(scheduler.Snapshot{Nodes: o.cache.Nodes(), Tasks: holding, Failed: failed}, pending)
	now := o.now()
	assign := func(t *berthv1.Task, node string) bool {
		if t.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_PENDING {
			return false
		}
		t.NodeId = node
		return taskstate.Set(t, berthv1.TaskState_TASK_STATE_ASSIGNED, "", now)
	}
	wait := func(t *berthv1.Task, reason string) bool {
		if t.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_PENDING {
			return false
		}
		return taskstate.Set(t, berthv1.TaskState_TASK_STATE_PENDING, reason, now)
	}
	for _, a := range plan.Assignments {
		node := a.NodeID
		if t, ok := created[a.TaskID]; ok {
			assign(t, node)
			continue
		}
		t := byID[a.TaskID]
		w.changes = append(w.changes, store.Change{Key: taskKey(t), Current: t, Apply: func(obj store.Object) bool {
			return assign(obj.(*berthv1.Task), node)
		}})
	}
	for _, u := range append(plan.Unplaced, held...) {
		reason := u.Reason
		if t, ok := created[u.TaskID]; ok {
			wait(t, reason)
			continue
		}
		t := byID[u.TaskID]
		if t.GetStatus().GetMessage() == reason {
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

func sortOldestFirst(ts []*berthv1.Task) {
	sortNewestFirst(ts)
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
