package cli

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
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
	slots := wantedSlots(svc, in.Tasks)
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

// slot is one place a service wants a task in: a replica number, or a
// node for a global service.
type slot struct {
	key  string
	name string // "web.2", "agent@node-1"
	// current are the slot's tasks of the current spec version, newest
	// first; other says which version runs there instead, if any.
	current []*berthv1.Task
	other   *berthv1.Task
}

// wantedSlots lists the slots svc wants, in order, with their tasks.
func wantedSlots(svc *berthv1.Service, tasks []*berthv1.Task) []*slot {
	global := svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	byKey := map[string]*slot{}
	var order []*slot
	add := func(key, name string) {
		if byKey[key] == nil {
			byKey[key] = &slot{key: key, name: name}
			order = append(order, byKey[key])
		}
	}
	if global {
		nodes := []string{}
		for _, t := range tasks {
			if t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING && t.GetNodeId() != "" && !slices.Contains(nodes, t.GetNodeId()) {
				nodes = append(nodes, t.GetNodeId())
			}
		}
		slices.Sort(nodes)
		for _, n := range nodes {
			add("node:"+n, "")
		}
	} else {
		for i := uint64(1); i <= svc.GetSpec().GetReplicas(); i++ {
			add(strconv.FormatUint(i, 10), fmt.Sprintf("%s.%d", svc.GetName(), i))
		}
	}
	for _, t := range tasks {
		s := byKey[taskstate.Slot(t)]
		if s == nil {
			continue
		}
		if t.GetSpecVersion() == svc.GetSpecVersion() {
			s.current = append(s.current, t)
		} else if t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING {
			s.other = t
		}
	}
	for _, s := range order {
		slices.SortFunc(s.current, func(a, b *berthv1.Task) int {
			return cmp.Or(b.GetMeta().GetCreatedAt().AsTime().Compare(a.GetMeta().GetCreatedAt().AsTime()),
				cmp.Compare(b.GetMeta().GetId(), a.GetMeta().GetId()))
		})
	}
	return order
}

// slotVerdict is where one slot stands.
type slotVerdict struct {
	settled, failed bool
	reason          string
}

// judgeSlot decides whether one slot runs the current spec.
func judgeSlot(svc *berthv1.Service, s *slot, in rolloutInput) slotVerdict {
	name := s.name
	if name == "" {
		node := strings.TrimPrefix(s.key, "node:")
		name = svc.GetName() + "@" + cmp.Or(in.NodeNames[node], shortID(node))
	}
	if len(s.current) == 0 {
		if s.other != nil {
			return slotVerdict{reason: fmt.Sprintf("%s runs version %d, not yet %d", name, s.other.GetSpecVersion(), svc.GetSpecVersion())}
		}
		return slotVerdict{reason: name + " has no task yet"}
	}
	t := s.current[0]
	st := t.GetStatus()
	state := st.GetState()
	word := taskStateWord(state)
	desired := t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING
	switch {
	case !desired && !taskstate.Terminal(state):
		return slotVerdict{reason: name + " is stopping"}
	case state == berthv1.TaskState_TASK_STATE_RUNNING:
		if needsHealth(svc.GetSpec(), st) && st.GetHealth() != berthv1.Health_HEALTH_HEALTHY {
			return slotVerdict{reason: fmt.Sprintf("%s running, %s", name, cmp.Or(enumWord(st.GetHealth().String(), "HEALTH_"), "no health result yet"))}
		}
		return slotVerdict{settled: true}
	case !taskstate.Terminal(state):
		reason := name + " " + cmp.Or(word, "new")
		// Why it waits for a node, or how the pull of its image goes.
		if msg := st.GetMessage(); msg != "" && (state <= berthv1.TaskState_TASK_STATE_PENDING || state == berthv1.TaskState_TASK_STATE_PREPARING) {
			reason += ": " + msg
		}
		return slotVerdict{reason: reason}
	case !desired:
		// Stopped on purpose (update, drain, rebalance): a new task comes.
		return slotVerdict{reason: name + " is being replaced"}
	}
	// The slot's newest task ended while meant to run.
	ended := name + " " + endedText(st)
	policy := svc.GetSpec().GetRestartPolicy().GetCondition()
	okExit := state == berthv1.TaskState_TASK_STATE_COMPLETE && st.GetExitCode() == 0
	switch {
	case okExit && policy != berthv1.RestartCondition_RESTART_CONDITION_ANY && policy != berthv1.RestartCondition_RESTART_CONDITION_UNSPECIFIED:
		// A one-shot task that did its job.
		return slotVerdict{settled: true}
	case in.GivenUp[t.GetMeta().GetId()]:
		return slotVerdict{failed: true, reason: ended + "; its restart attempts are used up (restart-given-up)"}
	case policy == berthv1.RestartCondition_RESTART_CONDITION_NONE:
		return slotVerdict{failed: true, reason: ended + " and the restart policy is none"}
	}
	return slotVerdict{reason: ended + ", restarting"}
}

// needsHealth reports whether a running task must pass a health check to
// count: its spec has a check, or it reports health (the image's own
// HEALTHCHECK).
func needsHealth(spec *berthv1.ServiceSpec, st *berthv1.TaskStatus) bool {
	if st.GetHealth() != berthv1.Health_HEALTH_UNSPECIFIED {
		return true
	}
	h := spec.GetHealthcheck()
	if h == nil || h.GetDisable() {
		return false
	}
	if len(h.GetTest()) > 0 {
		return h.GetTest()[0] != "NONE"
	}
	return h.GetHttpPort() != 0 || h.GetTcpPort() != 0
}

// endedText says how a task ended: "failed (exit code 1)", "failed (oom)",
// "rejected (no such image)", "complete".
func endedText(st *berthv1.TaskStatus) string {
	word := taskStateWord(st.GetState())
	switch {
	case st.GetOomKilled():
		return word + " (oom)"
	case st.GetErr() != "" && st.GetExitCode() != 0 && !strings.Contains(st.GetErr(), strconv.Itoa(int(st.GetExitCode()))):
		return fmt.Sprintf("%s (%s, exit code %d)", word, st.GetErr(), st.GetExitCode())
	case st.GetErr() != "":
		return word + " (" + st.GetErr() + ")"
	case st.GetExitCode() != 0:
		return fmt.Sprintf("%s (exit code %d)", word, st.GetExitCode())
	}
	return word
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
