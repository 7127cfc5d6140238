package slot

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
)

// Condition is what a slot is judged against.
type Condition int

const (
	// Converged: the slot's newest task of the current version runs (and
	// passes its health check when it has one), or, for a one-shot task
	// the restart policy does not restart, completed with exit code 0.
	// `apply --wait` and `rollout status` wait for it.
	Converged Condition = iota
	// Started: a task of the current version runs, or ran and completed
	// (depends_on: service_started).
	Started
	// Healthy: a task of the current version runs and passes its health
	// check (depends_on: service_healthy).
	Healthy
	// CompletedSuccessfully: the newest finished task of the current
	// version exited with code 0 (depends_on:
	// service_completed_successfully).
	CompletedSuccessfully
)

// Phase is where a slot stands against a condition.
type Phase int

const (
	// Waiting: not met yet, and may still be met.
	Waiting Phase = iota
	// Met: the condition holds.
	Met
	// Failed: the slot's task ended for good: it will not be met without
	// someone acting.
	Failed
)

// Wait says what a waiting slot waits for.
type Wait int

const (
	// NoTask: the slot has no task of the current version yet.
	NoTask Wait = iota
	// OtherVersion: another version still runs there (Verdict.Task).
	OtherVersion
	// Stopping: its newest task is being stopped.
	Stopping
	// Starting: its newest task is on its way to running.
	Starting
	// NotHealthy: its newest task runs but has not passed its health
	// check.
	NotHealthy
	// Replacing: its newest task was stopped on purpose (update, drain,
	// rebalance); a new one comes.
	Replacing
	// Restarting: its newest task ended while meant to run; the restart
	// policy starts another.
	Restarting
)

// Verdict is where one slot stands.
type Verdict struct {
	Phase Phase
	// Wait says what a waiting slot waits for.
	Wait Wait
	// Task is the task the verdict is about: the newest of the current
	// version, or the other version's task for OtherVersion; nil for
	// NoTask.
	Task *berthv1.Task
}

// Judge decides where slot s of svc stands against cond. gaveUp reports
// whether the restart policy gave up on a task that ended while meant to
// run (nil for never); with the policy none it is taken as given up.
func Judge(svc *berthv1.Service, s Slot, cond Condition, gaveUp func(*berthv1.Task) bool) Verdict {
	current := s.Current(svc.GetSpecVersion())
	if len(current) == 0 {
		if o := s.Other(svc.GetSpecVersion()); o != nil {
			return Verdict{Wait: OtherVersion, Task: o}
		}
		return Verdict{Wait: NoTask}
	}
	newest := current[0]
	switch cond {
	case Started:
		for _, t := range current {
			switch t.GetStatus().GetState() {
			case berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_COMPLETE:
				return Verdict{Phase: Met, Task: t}
			}
		}
	case Healthy:
		for _, t := range current {
			st := t.GetStatus()
			if st.GetState() == berthv1.TaskState_TASK_STATE_RUNNING && st.GetHealth() == berthv1.Health_HEALTH_HEALTHY {
				return Verdict{Phase: Met, Task: t}
			}
		}
	case CompletedSuccessfully:
		// The newest finished task decides: a success stays met while
		// the restart policy runs the task again.
		for _, t := range current {
			if !taskstate.Terminal(t.GetStatus().GetState()) {
				continue
			}
			if succeeded(t.GetStatus()) {
				return Verdict{Phase: Met, Task: t}
			}
			break
		}
	default:
		return converged(svc, newest, gaveUp)
	}
	return waitingFor(svc, newest, gaveUp)
}

// converged judges the newest task of a slot for Converged.
func converged(svc *berthv1.Service, t *berthv1.Task, gaveUp func(*berthv1.Task) bool) Verdict {
	st := t.GetStatus()
	if st.GetState() == berthv1.TaskState_TASK_STATE_RUNNING && t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING {
		if !Ready(svc.GetSpec(), t) {
			return Verdict{Wait: NotHealthy, Task: t}
		}
		return Verdict{Phase: Met, Task: t}
	}
	if taskstate.Terminal(st.GetState()) && t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING && succeeded(st) {
		switch svc.GetSpec().GetRestartPolicy().GetCondition() {
		case berthv1.RestartCondition_RESTART_CONDITION_ANY, berthv1.RestartCondition_RESTART_CONDITION_UNSPECIFIED:
		default:
			// A one-shot task that did its job.
			return Verdict{Phase: Met, Task: t}
		}
	}
	return waitingFor(svc, t, gaveUp)
}

// waitingFor says what a slot whose newest task is t waits for, or that it
// failed for good.
func waitingFor(svc *berthv1.Service, t *berthv1.Task, gaveUp func(*berthv1.Task) bool) Verdict {
	state := t.GetStatus().GetState()
	desired := t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING
	switch {
	case !desired && !taskstate.Terminal(state):
		return Verdict{Wait: Stopping, Task: t}
	case state == berthv1.TaskState_TASK_STATE_RUNNING:
		return Verdict{Wait: NotHealthy, Task: t}
	case !taskstate.Terminal(state):
		return Verdict{Wait: Starting, Task: t}
	case !desired:
		return Verdict{Wait: Replacing, Task: t}
	}
	if !succeeded(t.GetStatus()) && (svc.GetSpec().GetRestartPolicy().GetCondition() == berthv1.RestartCondition_RESTART_CONDITION_NONE ||
		(gaveUp != nil && gaveUp(t))) {
		return Verdict{Phase: Failed, Task: t}
	}
	return Verdict{Wait: Restarting, Task: t}
}

// succeeded reports whether a finished task completed with exit code 0.
func succeeded(st *berthv1.TaskStatus) bool {
	return st.GetState() == berthv1.TaskState_TASK_STATE_COMPLETE && st.GetExitCode() == 0
}

// Ready reports whether t, a task of a service with spec, runs and passes
// its health check when it has one: what a slot settles on, for a rollout
// as for `apply --wait`.
func Ready(spec *berthv1.ServiceSpec, t *berthv1.Task) bool {
	st := t.GetStatus()
	return st.GetState() == berthv1.TaskState_TASK_STATE_RUNNING &&
		(!NeedsHealth(spec, st) || st.GetHealth() == berthv1.Health_HEALTH_HEALTHY)
}

// NeedsHealth reports whether a running task must pass a health check to
// count: its spec has a check, or it reports health (the image's own
// HEALTHCHECK).
func NeedsHealth(spec *berthv1.ServiceSpec, st *berthv1.TaskStatus) bool {
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
