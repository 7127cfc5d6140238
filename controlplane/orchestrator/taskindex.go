package orchestrator

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
)

// taskIndex is what placement reads of the tasks, kept up to date from the
// cache's task events rather than gathered from every task on each pass:
// what the placed tasks hold on each node, the tasks waiting for a node,
// and the recent failures. A pass then costs in proportion to the nodes
// and the tasks it places, not to every task of the cluster.
//
// The orchestrator's goroutine owns it.
type taskIndex struct {
	usage *scheduler.Usage
	// pending are the tasks meant to run that wait for a node.
	pending map[string]*berthv1.Task
	// failed are the tasks that failed on a node while meant to run; only
	// those of the last failureMemory weigh on placement.
	failed map[string]*berthv1.Task
	// slots are the tasks of each slot of each service (service ID, slot
	// key, task ID), and where says which slot holds each task: a pass
	// over the slots that changed reads them, not the whole service.
	slots map[string]map[string]map[string]*berthv1.Task
	where map[string]slotRef
}

// slotRef names one slot of one service.
type slotRef struct{ service, key string }

// rebuild indexes every task of tasks (all the cache holds).
func (x *taskIndex) rebuild(tasks []*berthv1.Task) {
	*x = taskIndex{
		usage: scheduler.NewUsage(), pending: map[string]*berthv1.Task{}, failed: map[string]*berthv1.Task{},
		slots: map[string]map[string]map[string]*berthv1.Task{}, where: make(map[string]slotRef, len(tasks)),
	}
	for _, t := range tasks {
		x.update(t)
	}
}

// update indexes t as it is now.
func (x *taskIndex) update(t *berthv1.Task) {
	id := t.GetMeta().GetId()
	x.usage.Update(t)
	if taskstate.Active(t) && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_PENDING {
		x.pending[id] = t
	} else {
		delete(x.pending, id)
	}
	if recentFailure(t, time.Time{}) {
		x.failed[id] = t
	} else {
		delete(x.failed, id)
	}
	ref := slotRef{t.ServiceId, taskstate.Slot(t)}
	if old, ok := x.where[id]; ok && old != ref {
		x.forgetSlot(id)
	}
	x.where[id] = ref
	byKey := x.slots[ref.service]
	if byKey == nil {
		byKey = map[string]map[string]*berthv1.Task{}
		x.slots[ref.service] = byKey
	}
	if byKey[ref.key] == nil {
		byKey[ref.key] = map[string]*berthv1.Task{}
	}
	byKey[ref.key][id] = t
}

// forgetSlot takes task id out of the slot that holds it.
func (x *taskIndex) forgetSlot(id string) {
	ref, ok := x.where[id]
	if !ok {
		return
	}
	delete(x.where, id)
	byKey := x.slots[ref.service]
	delete(byKey[ref.key], id)
	if len(byKey[ref.key]) == 0 {
		delete(byKey, ref.key)
	}
	if len(byKey) == 0 {
		delete(x.slots, ref.service)
	}
}

// slotTasks are the tasks of one slot of a service, in no order.
func (x *taskIndex) slotTasks(service, key string) []*berthv1.Task {
	m := x.slots[service][key]
	out := make([]*berthv1.Task, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	return out
}

// remove forgets a deleted task.
func (x *taskIndex) remove(id string) {
	x.usage.Remove(id)
	delete(x.pending, id)
	delete(x.failed, id)
	x.forgetSlot(id)
}

// apply follows the cache's events; it reports false when it could not
// (the events overflowed or the cache resynced) and the index must be
// rebuilt.
func (x *taskIndex) apply(events []store.Event) bool {
	for _, ev := range events {
		switch ev.Kind {
		case store.KindResync:
			return false
		case store.KindTask:
			t := ev.Object.(*berthv1.Task)
			if ev.Action == store.ActionDelete {
				x.remove(t.GetMeta().GetId())
			} else {
				x.update(t)
			}
		}
	}
	return true
}

// recentFailures are the failures since the given time; older ones are
// forgotten.
func (x *taskIndex) recentFailures(since time.Time) []*berthv1.Task {
	var out []*berthv1.Task
	for id, t := range x.failed {
		if !recentFailure(t, since) {
			delete(x.failed, id)
			continue
		}
		out = append(out, t)
	}
	return out
}
