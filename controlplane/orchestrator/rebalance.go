package orchestrator

import (
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/api/volume"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// rebalanceBatch is how many of a service's tasks move at once. Each move
// starts the new task before the old one stops, so a few at a time keeps
// the extra load of a rebalance small.
const rebalanceBatch = 2

// rebalanceStep moves the tasks of a service asked to rebalance toward an
// even spread, a batch at a time: each move starts a task on the node the
// scheduler picks, and the old one stops once it is ready (see
// settleReplacement). It waits while any slot is in flight (an update, a
// restart, the previous batch), and ends when the scheduler finds no move
// that makes the spread more even.
func (o *Orchestrator) rebalanceStep(svc *berthv1.Service, r *rollout, tasks []*berthv1.Task, w *writes) time.Time {
	st := svc.GetRebalance()
	if st.GetState() != berthv1.RebalanceState_REBALANCE_STATE_REQUESTED && st.GetState() != berthv1.RebalanceState_REBALANCE_STATE_MOVING {
		return time.Time{}
	}
	if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		o.finishRebalance(svc, w, "a global service runs one task on each node")
		return time.Time{}
	}
	if volume.HasNamed(svc.GetSpec()) {
		o.finishRebalance(svc, w, "its tasks stay on the nodes that hold their volumes")
		return time.Time{}
	}
	if r.inFlight > 0 || len(r.outdated) > 0 {
		return time.Time{}
	}
	var running []*berthv1.Task
	byID := map[string]*berthv1.Task{}
	for _, t := range tasks {
		// A move ends when the old task has stopped: until then it still
		// counts on its node, and the next batch would see the node full.
		if !taskstate.Active(t) && taskstate.Live(t) && t.GetStatus().GetState() >= berthv1.TaskState_TASK_STATE_ASSIGNED {
			return time.Time{}
		}
		if ready(t) && t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING {
			running = append(running, t)
			byID[t.GetMeta().GetId()] = t
		}
	}
	snap, _ := o.snapshot()
	moves := scheduler.Rebalance(snap, running, rebalanceBatch)
	if len(moves) == 0 {
		msg := "the service's tasks are spread as evenly as the nodes allow"
		if n := st.GetMoved(); n > 0 {
			msg = fmt.Sprintf("moved %d tasks; %s", n, msg)
		}
		o.finishRebalance(svc, w, msg)
		return time.Time{}
	}
	for _, m := range moves {
		old := byID[m.TaskID]
		if old == nil {
			continue
		}
		t := replacement(svc, old, berthv1.ReplaceCause_REPLACE_CAUSE_REBALANCE, r.now)
		t.NodeId = m.ToNodeID
		w.create(t)
	}
	n := uint32(len(moves))
	w.changeService(svc, func(s *berthv1.Service) bool {
		if s.Rebalance == nil {
			return false
		}
		s.Rebalance.State = berthv1.RebalanceState_REBALANCE_STATE_MOVING
		s.Rebalance.Moved += n
		s.Rebalance.Message = fmt.Sprintf("moving %d tasks", n)
		return true
	})
	return time.Time{}
}

// finishRebalance marks the service's rebalance done, saying how it went.
func (o *Orchestrator) finishRebalance(svc *berthv1.Service, w *writes, msg string) {
	requested := svc.GetRebalance().GetRequestedAt().AsTime()
	now := timestamppb.New(o.now())
	w.changeService(svc, func(s *berthv1.Service) bool {
		// A newer request is not finished by this pass's view.
		if s.Rebalance == nil || !s.Rebalance.GetRequestedAt().AsTime().Equal(requested) ||
			s.Rebalance.State == berthv1.RebalanceState_REBALANCE_STATE_COMPLETED {
			return false
		}
		s.Rebalance.State = berthv1.RebalanceState_REBALANCE_STATE_COMPLETED
		s.Rebalance.CompletedAt = now
		s.Rebalance.Message = msg
		return true
	})
	w.events = append(w.events, serviceEvent(svc, "rebalance", fmt.Sprintf("rebalance of %s done: %s", svc.Name, msg)))
}

// rebalanceBlocked ends the rebalance of t's service when its move cannot
// be placed: moving again would pick the same node.
func (o *Orchestrator) rebalanceBlocked(t *berthv1.Task, reason string, w *writes) {
	for _, svc := range o.cache.Services(store.AppServicesPrefix(t.Namespace, t.App)) {
		if svc.GetMeta().GetId() == t.ServiceId {
			o.finishRebalance(svc, w, "stopped: no node can take a moved task now: "+reason)
		}
	}
}

// autoRebalance asks every replicated service to rebalance when a node
// joins or comes back, if the cluster's settings say so. It remembers which
// nodes were ready: the first look after the orchestrator starts is not a
// change.
func (o *Orchestrator) autoRebalance(w *writes) {
	nodes := o.cache.Nodes()
	ready := make(map[string]bool, len(nodes))
	arrived := ""
	for _, n := range nodes {
		id := n.GetMeta().GetId()
		ready[id] = nodestate.Ready(n)
		if o.readyNodes != nil && ready[id] && !o.readyNodes[id] {
			arrived = n.Name
		}
	}
	o.readyNodes = ready
	if arrived == "" || !o.cache.Settings().GetAutoRebalance() {
		return
	}
	now := timestamppb.New(o.now())
	for _, svc := range o.cache.Services(store.ServicesPrefix) {
		if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			continue
		}
		if st := svc.GetRebalance().GetState(); st == berthv1.RebalanceState_REBALANCE_STATE_REQUESTED || st == berthv1.RebalanceState_REBALANCE_STATE_MOVING {
			continue
		}
		msg := "node " + arrived + " is ready (auto-rebalance)"
		w.changeService(svc, func(s *berthv1.Service) bool {
			s.Rebalance = &berthv1.RebalanceStatus{State: berthv1.RebalanceState_REBALANCE_STATE_REQUESTED, RequestedAt: now, Message: msg}
			return true
		})
	}
}
