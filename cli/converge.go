package cli

import (
	"cmp"
	"fmt"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/slot"
	"github.com/berthproject/berth/api/taskstate"
)

// rolloutPhase is where a service stands on its way to its current spec.
type rolloutPhase int

const (
	// phaseConverging: the service is on its way; waiting longer may help.
	phaseConverging rolloutPhase = iota
	// phaseConverged: every wanted task runs the current spec (healthy when
	// it has a check) and no rollout is under way.
	phaseConverged
	// phaseFailed: the service will not get there without someone acting:
	// its rollout paused or was rolled back, or a task failed for good.
	phaseFailed
)

// maxReasons is how many unsettled tasks a verdict names; the rest are
// counted, so a line stays readable for a service of 100 replicas.
const maxReasons = 3

// rolloutInput is one read of a service: what judgeRollout looks at.
type rolloutInput struct {
	Service *berthv1.Service
	// Tasks are the service's tasks as ListTasks gives them without all:
	// the live ones and the newest finished one of each slot.
	Tasks []*berthv1.Task
	// GivenUp holds the IDs of tasks whose restarts the restart policy
	// gave up (the "restart-given-up" events).
	GivenUp map[string]bool
	// NodeNames maps node IDs to names, to name a global service's tasks.
	NodeNames map[string]string
}

// rolloutVerdict says where a service stands, for "rollout status" and
// "apply --wait".
type rolloutVerdict struct {
	Phase rolloutPhase
	// State is the rollout's state word ("updating", "paused",
	// "rollback-completed"); "" when the service was never updated or the
	// status belongs to an earlier spec.
	State string
	// Updated counts the wanted tasks that run the current spec (and pass
	// their health check); Wanted is how many tasks the service wants.
	Updated, Wanted int
	// Reason says what the service waits for, or why it failed.
	Reason string
}

// summary is the verdict in one line: "updating, 3/5 tasks updated: web.4
// pending: no suitable node (...)".
func (v rolloutVerdict) summary() string {
	s := fmt.Sprintf("%d/%d tasks updated", v.Updated, v.Wanted)
	if v.State != "" {
		s = v.State + ", " + s
	}
	if v.Phase == phaseConverged {
		return "converged, " + s
	}
	if v.Reason != "" {
		s += ": " + v.Reason
	}
	return s
}

// judgeRollout decides whether a service has converged on its current
// spec, is still on its way, or failed. It is pure: the same read gives the
// same verdict.
//
// A service has converged when its rollout is absent or completed and each
// wanted slot's newest task of the current spec version runs (and is
// healthy when it has a health check) or, for one-shot tasks that the
// restart policy does not restart, completed with exit code 0. Wanted slots
// are 1 to replicas for a replicated service, and for a global one each
// node where a task is meant to run.
func judgeRollout(in rolloutInput) rolloutVerdict {
	svc := in.Service
	v := rolloutVerdict{}
	updateFailure := ""
	us := currentUpdateStatus(svc)
	if us != nil {
		v.State = enumWord(us.GetState().String(), "UPDATE_STATE_")
		msg := us.GetMessage()
		switch us.GetState() {
		case berthv1.UpdateState_UPDATE_STATE_PAUSED:
			updateFailure = withDetail("the update paused", msg)
		case berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED:
			updateFailure = withDetail("the rollback paused", msg)
		case berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED:
			if !requestedRollback(svc) {
				updateFailure = withDetail("the update was rolled back", msg)
			}
		}
	}
	slots := slot.Wanted(svc, slot.Group(in.Tasks), nil)
	v.Wanted = len(slots)
	var waiting, failed []string
	for _, s := range slots {
		st := judgeSlot(svc, s, in)
		switch {
		case st.settled:
			v.Updated++
		case st.failed:
			failed = append(failed, st.reason)
		default:
			waiting = append(waiting, st.reason)
		}
	}
	switch {
	case updateFailure != "":
		v.Phase, v.Reason = phaseFailed, updateFailure
	case len(failed) > 0:
		v.Phase, v.Reason = phaseFailed, joinReasons(failed)
	case len(waiting) > 0:
		v.Reason = joinReasons(waiting)
	case v.Wanted == 0 && svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL:
		// Right after an apply the orchestrator may not have made the
		// tasks yet: a global service with none is not taken as done.
		v.Reason = "no task placed yet (is any node eligible? check the placement constraints)"
	case us.GetState() == berthv1.UpdateState_UPDATE_STATE_UPDATING || us.GetState() == berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED:
		// The tasks are there; the rollout still monitors them.
		v.Reason = "the rollout still watches the new tasks"
	default:
		v.Phase = phaseConverged
	}
	return v
}

// currentUpdateStatus is svc's update status when it is about the current
// spec: a status that started before the current spec was made belongs to
// an earlier rollout (the orchestrator has not picked the new spec up yet).
// A rollback makes a spec of its own ("rollback to version N"), so its
// status is taken as current.
func currentUpdateStatus(svc *berthv1.Service) *berthv1.UpdateStatus {
	us := svc.GetUpdateStatus()
	if us == nil || us.GetState() == berthv1.UpdateState_UPDATE_STATE_UNSPECIFIED {
		return nil
	}
	started, made := us.GetStartedAt(), svc.GetSpecUpdatedAt()
	if started == nil || made == nil || !started.AsTime().Before(made.AsTime()) {
		return us
	}
	switch us.GetState() {
	case berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED,
		berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED:
		if strings.HasPrefix(svc.GetChangeCause(), "rollback") {
			return us
		}
	}
	return nil
}

// requestedRollback reports whether svc's current spec comes from a
// rollback someone asked for (`berth rollout undo`: the cause is "rollback
// to version N") rather than from an update that failed (the orchestrator
// adds why: "rollback to version N: update to version M failed: ...").
// Completing the first is a success.
func requestedRollback(svc *berthv1.Service) bool {
	cause := svc.GetChangeCause()
	return strings.HasPrefix(cause, "rollback to version ") && !strings.Contains(cause, ": ")
}

// judgeSlot words where one slot stands (the slot model's verdict) for a
// rollout's reason.
func judgeSlot(svc *berthv1.Service, s slot.Slot, in rolloutInput) slotVerdict {
	name := fmt.Sprintf("%s.%d", svc.GetName(), s.Number)
	if s.Node != "" {
		name = svc.GetName() + "@" + cmp.Or(in.NodeNames[s.Node], shortID(s.Node))
	}
	v := slot.Judge(svc, s, slot.Converged, func(t *berthv1.Task) bool { return in.GivenUp[t.GetMeta().GetId()] })
	t := v.Task
	st := t.GetStatus()
	switch {
	case v.Phase == slot.Met:
		return slotVerdict{settled: true}
	case v.Phase == slot.Failed && in.GivenUp[t.GetMeta().GetId()]:
		return slotVerdict{failed: true, reason: name + " " + taskstate.Ended(st) + "; its restart attempts are used up (restart-given-up)"}
	case v.Phase == slot.Failed:
		return slotVerdict{failed: true, reason: name + " " + taskstate.Ended(st) + " and the restart policy is none"}
	}
	switch v.Wait {
	case slot.OtherVersion:
		return slotVerdict{reason: fmt.Sprintf("%s runs version %d, not yet %d", name, t.GetSpecVersion(), svc.GetSpecVersion())}
	case slot.Stopping:
		return slotVerdict{reason: name + " is stopping"}
	case slot.NotHealthy:
		return slotVerdict{reason: fmt.Sprintf("%s running, %s", name, cmp.Or(enumWord(st.GetHealth().String(), "HEALTH_"), "no health result yet"))}
	case slot.Starting:
		state := st.GetState()
		reason := name + " " + cmp.Or(taskStateWord(state), "new")
		// Why it waits for a node, or how the pull of its image goes.
		if msg := st.GetMessage(); msg != "" && (state <= berthv1.TaskState_TASK_STATE_PENDING || state == berthv1.TaskState_TASK_STATE_PREPARING) {
			reason += ": " + msg
		}
		return slotVerdict{reason: reason}
	case slot.Replacing:
		// Stopped on purpose (update, drain, rebalance): a new task comes.
		return slotVerdict{reason: name + " is being replaced"}
	case slot.Restarting:
		return slotVerdict{reason: name + " " + taskstate.Ended(st) + ", restarting"}
	}
	return slotVerdict{reason: name + " has no task yet"}
}

// slotVerdict is where one slot stands, in words.
type slotVerdict struct {
	settled, failed bool
	reason          string
}

// withDetail is what with the server's detail, unless the detail already
// says it: the server's messages often begin with "update paused: ...".
func withDetail(what, detail string) string {
	switch {
	case detail == "":
		return what
	case strings.Contains(strings.ToLower(detail), strings.TrimPrefix(what, "the ")):
		return detail
	}
	return what + ": " + detail
}

// joinReasons names the first few reasons and counts the rest.
func joinReasons(reasons []string) string {
	if len(reasons) <= maxReasons {
		return strings.Join(reasons, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(reasons[:maxReasons], "; "), len(reasons)-maxReasons)
}
