// Package taskstate holds the rules of a task's life: which states are
// final, and how a task moves forward.
package taskstate

import (
	"strconv"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Terminal reports whether s is a final state: the container is not running
// and never will again.
func Terminal(s berthv1.TaskState) bool { return s > berthv1.TaskState_TASK_STATE_RUNNING }

// Active reports whether t holds, or is about to hold, a place on a node:
// desired to run and not finished.
func Active(t *berthv1.Task) bool {
	return t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING && !Terminal(t.GetStatus().GetState())
}

// InService reports whether t takes traffic: it runs, is meant to, and
// passes its health check if it has one. Names and virtual IPs lead to
// such tasks only.
func InService(t *berthv1.Task) bool {
	h := t.GetStatus().GetHealth()
	return t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING &&
		t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING &&
		(h == berthv1.Health_HEALTH_UNSPECIFIED || h == berthv1.Health_HEALTH_HEALTHY)
}

// Live reports whether t is not finished, whatever is desired of it: its
// container may still run.
func Live(t *berthv1.Task) bool { return !Terminal(t.GetStatus().GetState()) }

// Name is the lower-case word for s: "running", "pending".
func Name(s berthv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

// Advance sets t's status to status when it moves the task forward (or
// keeps its state with new details), recording the step in the history. It
// reports whether anything changed. Observed states never go backwards.
func Advance(t *berthv1.Task, status *berthv1.TaskStatus, now time.Time) bool {
	cur := t.GetStatus()
	if status.State < cur.GetState() {
		return false
	}
	if status.State == cur.GetState() && sameDetails(cur, status) {
		return false
	}
	if status.Timestamp == nil {
		status.Timestamp = timestamppb.New(now)
	}
	if status.State != cur.GetState() {
		t.History = append(t.History, &berthv1.StateTransition{State: status.State, At: status.Timestamp})
	}
	t.Status = status
	return true
}

func sameDetails(a, b *berthv1.TaskStatus) bool {
	return a.GetMessage() == b.GetMessage() && a.GetErr() == b.GetErr() &&
		a.GetExitCode() == b.GetExitCode() && a.GetContainerId() == b.GetContainerId() &&
		a.GetAddress() == b.GetAddress() && a.GetPid() == b.GetPid() && len(a.GetPorts()) == len(b.GetPorts()) &&
		a.GetHealth() == b.GetHealth()
}

// Set moves t to state with message, as Advance does.
func Set(t *berthv1.Task, state berthv1.TaskState, message string, now time.Time) bool {
	st := &berthv1.TaskStatus{State: state, Message: message}
	if cur := t.GetStatus(); cur != nil && state == cur.State {
		st = proto.Clone(cur).(*berthv1.TaskStatus)
		st.Message = message
		st.Timestamp = nil
	}
	return Advance(t, st, now)
}

// Slot names the place a task fills within its service: its slot number
// for replicated services, its node for global ones.
func Slot(t *berthv1.Task) string {
	if t.Slot > 0 {
		return strconv.FormatUint(t.Slot, 10)
	}
	return "node:" + t.NodeId
}
