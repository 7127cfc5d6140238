package orchestrator

import (
	"context"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
)

// place assigns pending tasks to nodes, and tells those that fit nowhere
// why.
func (o *Orchestrator) place(ctx context.Context) error {
	var pending, holding []*berthv1.Task
	for _, t := range o.cache.Tasks() {
		switch {
		case !taskstate.Active(t):
		case t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_PENDING:
			pending = append(pending, t)
		case t.NodeId != "":
			holding = append(holding, t)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	sortOldestFirst(pending)
	plan := scheduler.Schedule(scheduler.Snapshot{Nodes: o.cache.Nodes(), Tasks: holding}, pending)
	byID := make(map[string]*berthv1.Task, len(pending))
	for _, t := range pending {
		byID[t.GetMeta().GetId()] = t
	}
	now := o.now()
	changes := make([]store.Change, 0, len(pending))
	for _, a := range plan.Assignments {
		t, node := byID[a.TaskID], a.NodeID
		changes = append(changes, store.Change{Key: taskKey(t), Current: t, Apply: func(obj store.Object) bool {
			t := obj.(*berthv1.Task)
			if t.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_PENDING {
				return false
			}
			t.NodeId = node
			return taskstate.Set(t, berthv1.TaskState_TASK_STATE_ASSIGNED, "", now)
		}})
	}
	for _, u := range plan.Unplaced {
		t, reason := byID[u.TaskID], u.Reason
		if t.GetStatus().GetMessage() == reason {
			continue
		}
		changes = append(changes, store.Change{Key: taskKey(t), Current: t, Apply: func(obj store.Object) bool {
			t := obj.(*berthv1.Task)
			if t.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_PENDING {
				return false
			}
			return taskstate.Set(t, berthv1.TaskState_TASK_STATE_PENDING, reason, now)
		}})
	}
	if len(plan.Unplaced) > 0 {
		o.log.Debug("tasks wait for a node", "count", len(plan.Unplaced), "first", describe(byID[plan.Unplaced[0].TaskID]), "reason", plan.Unplaced[0].Reason)
	}
	_, err := o.store.Update(ctx, changes)
	return err
}

func sortOldestFirst(ts []*berthv1.Task) {
	sortNewestFirst(ts)
	for i, j := 0, len(ts)-1; i < j; i, j = i+1, j-1 {
		ts[i], ts[j] = ts[j], ts[i]
	}
}
