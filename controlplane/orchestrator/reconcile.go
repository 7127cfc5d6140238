package orchestrator

import (
	"fmt"
	"slices"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/slot"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// reconcile brings one service's tasks in line with its spec, adding the
// writes to w. It returns when it needs another look: a delayed restart, an
// update's delay or monitor period.
func (o *Orchestrator) reconcile(svc *berthv1.Service, tasks []*berthv1.Task, nodes []*berthv1.Node, w *writes) time.Time {
	now := o.now()
	tasks = orphanOnDownNodes(tasks, nodes, w, now)
	groups := slot.Group(tasks)
	wanted := slot.Wanted(svc, groups, globalNodeIDs(svc, nodes))
	r := newRollout(svc, tasks, now)
	r.slots = len(wanted)
	moving, movingWake := notReadyNodes(nodes, now, o.notReadyGrace)
	wake := earliest(movingWake, o.reconcileWanted(svc, r, wanted, groups, drainedNodes(nodes), moving, w))
	o.noteSteady(svc, r)
	wake = earliest(wake, o.step(r, w))
	return earliest(wake, o.rebalanceStep(svc, r, tasks, w))
}

// globalNodeIDs are the nodes among nodes where a global service wants a
// task; nil for a replicated service.
func globalNodeIDs(svc *berthv1.Service, nodes []*berthv1.Node) []string {
	if svc.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		return nil
	}
	out := []string{}
	for _, n := range scheduler.GlobalNodes(svc.GetSpec(), nodes) {
		out = append(out, n.GetMeta().GetId())
	}
	return out
}

// reconcileWanted brings the slots wanted of svc in line, and stops and
// forgets the tasks of the slots in groups that are not wanted, gathering
// for r what the rollout needs to know. Tasks on drained nodes, and on
// nodes moving (not ready past the grace: node id to why), are replaced
// elsewhere.
func (o *Orchestrator) reconcileWanted(svc *berthv1.Service, r *rollout, wanted []slot.Slot, groups map[string][]*berthv1.Task, drained map[string]bool, moving map[string]string, w *writes) time.Time {
	now := r.now
	var wake time.Time
	for _, sl := range wanted {
		key, node, ts := sl.Key, sl.Node, sl.Tasks
		var active []*berthv1.Task
		var ended []*berthv1.Task
		for _, t := range ts {
			switch {
			case taskstate.Active(t):
				active = append(active, t)
			case taskstate.Terminal(t.GetStatus().GetState()):
				ended = append(ended, t)
			}
		}
		switch {
		case len(active) > 1:
			settleReplacement(active, w)
			r.inFlight++
		case len(active) == 1:
			t := active[0]
			switch {
			case node == "" && drained[t.NodeId]:
				// Start the replacement elsewhere first, so draining does
				// not lower the running count where capacity allows.
				if t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
					w.create(replacement(svc, t, berthv1.ReplaceCause_REPLACE_CAUSE_DRAIN, now))
				} else {
					w.shutdown(t, "its node is drained")
				}
				r.inFlight++
			case node == "" && moving[t.NodeId] != "":
				// As from a drained node: the replacement first.
				if t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
					w.create(replacement(svc, t, berthv1.ReplaceCause_REPLACE_CAUSE_NODE_NOT_READY, now))
				} else {
					w.shutdown(t, moving[t.NodeId])
				}
				r.inFlight++
			case !r.current(t):
				r.outdated = append(r.outdated, outdatedSlot{key: key, task: t, ended: ended})
			case !ready(t):
				r.inFlight++
			}
			if t.SpecVersion < svc.SpecVersion && r.current(t) {
				w.adopt(t, svc.SpecVersion)
			}
		case !hasStopping(ts):
			r.inFlight++
			switch {
			case len(ended) == 0:
				w.create(newTask(svc, sl.Number, node, now))
			default:
				d := decideRestart(svc.GetSpec().GetRestartPolicy(), ended, now)
				o.noteRestart(w, svc.GetSpec().GetRestartPolicy(), ended[0], d, now)
				if d.restart && !d.at.After(now) {
					t := newTask(svc, sl.Number, node, now)
					t.Restarts = d.restarts
					w.create(t)
				} else if d.restart && (wake.IsZero() || d.at.Before(wake)) {
					wake = d.at
				} else if !d.restart {
					// A slot given up is not waited for.
					r.inFlight--
				}
			}
		default:
			// The old task of a stop-first replacement is stopping.
			r.inFlight++
		}
		pruneHistory(ts, w)
	}
	wantedKeys := make(map[string]bool, len(wanted))
	for _, sl := range wanted {
		wantedKeys[sl.Key] = true
	}
	for key, ts := range groups {
		if wantedKeys[key] {
			continue
		}
		// A slot no longer wanted: scaled down, or its node left.
		for _, t := range ts {
			if taskstate.Active(t) {
				w.shutdown(t, "no longer wanted by the service")
			}
		}
		o.removeTasks(ts, w)
	}
	return wake
}

// settleReplacement handles a slot with more than one task meant to run,
// newest first: a replacement started beside the task it replaces, or a
// surplus. Once the newest is ready the others stop; until then the newest
// older task that runs keeps running, and the rest stop.
func settleReplacement(active []*berthv1.Task, w *writes) {
	newest := active[0]
	if ready(newest) {
		why := "surplus task in its slot"
		if newest.Replaces != "" {
			why = "replaced by task " + store.TaskName(newest) + " (" + replaceWords(newest.ReplaceCause) + ")"
		}
		for _, t := range active[1:] {
			w.shutdown(t, why)
		}
		return
	}
	kept := false
	for _, t := range active[1:] {
		if !kept && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			kept = true
			continue
		}
		w.shutdown(t, "surplus task in its slot")
	}
}

// replaceWords says why a task was started beside another.
func replaceWords(c berthv1.ReplaceCause) string {
	switch c {
	case berthv1.ReplaceCause_REPLACE_CAUSE_DRAIN:
		return "node drained"
	case berthv1.ReplaceCause_REPLACE_CAUSE_REBALANCE:
		return "rebalance"
	case berthv1.ReplaceCause_REPLACE_CAUSE_NODE_NOT_READY:
		return "node not ready"
	}
	return "update"
}

// drainedNodes are the IDs of the nodes set to drain.
func drainedNodes(nodes []*berthv1.Node) map[string]bool {
	out := map[string]bool{}
	for _, n := range nodes {
		if n.Availability == berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN {
			out[n.GetMeta().GetId()] = true
		}
	}
	return out
}

// earliest is the sooner of two wake times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// orphanOnDownNodes gives up the live tasks of down nodes, and of nodes
// removed from the cluster (`berth node rm`): they become orphaned (in w,
// and in the returned view of tasks) so that their slots are filled
// elsewhere. The agent of a down node stops them if it comes back; that of
// a removed node is refused by the control plane.
func orphanOnDownNodes(tasks []*berthv1.Task, nodes []*berthv1.Node, w *writes, now time.Time) []*berthv1.Task {
	known := make(map[string]bool, len(nodes))
	down := map[string]string{}
	for _, n := range nodes {
		known[n.GetMeta().GetId()] = true
		if n.Status == berthv1.NodeStatus_NODE_STATUS_DOWN {
			down[n.GetMeta().GetId()] = n.Name
		}
	}
	var out []*berthv1.Task
	for i, t := range tasks {
		name, isDown := down[t.NodeId]
		removed := t.NodeId != "" && !known[t.NodeId]
		if (!isDown && !removed) || !taskstate.Live(t) || t.GetStatus().GetState() < berthv1.TaskState_TASK_STATE_ASSIGNED {
			continue
		}
		if out == nil {
			out = slices.Clone(tasks)
		}
		why := "node " + name + " is down"
		if removed {
			why = "node " + t.NodeId + " was removed from the cluster"
		}
		orphaned := proto.Clone(t).(*berthv1.Task)
		taskstate.Set(orphaned, berthv1.TaskState_TASK_STATE_ORPHANED, why, now)
		out[i] = orphaned
		w.orphan(t, why, now)
	}
	if out == nil {
		return tasks
	}
	return out
}

// hasStopping reports whether a task of the slot is still being stopped:
// the replacement waits for it, so a slot never runs two containers that
// both believe they are the one.
func hasStopping(ts []*berthv1.Task) bool {
	for _, t := range ts {
		if t.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING && taskstate.Live(t) && t.GetStatus().GetState() >= berthv1.TaskState_TASK_STATE_ASSIGNED {
			return true
		}
	}
	return false
}

// pruneHistory forgets the oldest finished tasks of a slot past the limit.
// ts is newest first.
func pruneHistory(ts []*berthv1.Task, w *writes) {
	kept := 0
	for _, t := range ts {
		if !taskstate.Terminal(t.GetStatus().GetState()) {
			continue
		}
		if kept < historyLimit {
			kept++
			continue
		}
		w.remove(t)
	}
}

// removeTasks stops and forgets tasks nobody wants any more: those still
// live are told to shut down; those finished, or that never reached a
// node, are deleted.
func (o *Orchestrator) removeTasks(ts []*berthv1.Task, w *writes) {
	for _, t := range ts {
		st := t.GetStatus().GetState()
		n, nodeKnown := o.cache.Node(t.NodeId)
		nodeKnown = nodeKnown && n.Status != berthv1.NodeStatus_NODE_STATUS_DOWN
		switch {
		case taskstate.Terminal(st), st < berthv1.TaskState_TASK_STATE_ASSIGNED, !nodeKnown:
			w.remove(t)
		case t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING:
			w.shutdown(t, "its service was removed")
		}
	}
}

func newTask(svc *berthv1.Service, slot uint64, node string, now time.Time) *berthv1.Task {
	ts := timestamppb.New(now)
	return &berthv1.Task{
		Meta:         &berthv1.Meta{Id: store.NewID(), CreatedAt: ts, UpdatedAt: ts},
		Namespace:    svc.Namespace,
		App:          svc.App,
		Service:      svc.Name,
		ServiceId:    svc.GetMeta().GetId(),
		Slot:         slot,
		SpecVersion:  svc.SpecVersion,
		Spec:         svc.Spec,
		NodeId:       node,
		DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
		Status:       &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_PENDING, Timestamp: ts},
		History: []*berthv1.StateTransition{
			{State: berthv1.TaskState_TASK_STATE_NEW, At: ts},
			{State: berthv1.TaskState_TASK_STATE_PENDING, At: ts},
		},
	}
}

func taskKey(t *berthv1.Task) string {
	return store.TaskKey(t.Namespace, t.App, t.Service, t.GetMeta().GetId())
}

func describe(t *berthv1.Task) string {
	return fmt.Sprintf("%s/%s/%s.%s", t.Namespace, t.App, t.Service, taskstate.Slot(t))
}
