package orchestrator

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
)

// The backoff of a slot whose tasks keep failing, used when the service's
// restart policy sets no delay: the first failure is replaced at once, the
// second after backoffBase, each further one after twice as long, up to
// backoffCap. A task that ran for ranWell before it ended starts the count
// afresh.
const (
	backoffBase = 250 * time.Millisecond
	backoffCap  = 30 * time.Second
	ranWell     = 10 * time.Second
)

// restartDecision says whether a slot whose tasks all ended gets a new task,
// not before when, and how many failures in a row the new task follows.
type restartDecision struct {
	restart  bool
	at       time.Time
	restarts uint32
	reason   string
}

// decideRestart applies the restart policy to a slot whose last task ended.
// ended holds the slot's finished tasks, newest first; last is ended[0].
// It reads no clock: now is given.
func decideRestart(policy *berthv1.RestartPolicy, ended []*berthv1.Task, now time.Time) restartDecision {
	last := ended[0]
	// A task stopped on purpose (update, scale down then up, node drain)
	// is replaced at once whatever the policy says.
	if last.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING {
		return restartDecision{restart: true, at: now}
	}
	state := last.GetStatus().GetState()
	// A task lost with its node did not fail: its slot is filled at once.
	if state == berthv1.TaskState_TASK_STATE_ORPHANED {
		return restartDecision{restart: true, at: now}
	}
	switch policy.GetCondition() {
	case berthv1.RestartCondition_RESTART_CONDITION_NONE:
		return restartDecision{reason: "restart policy is none"}
	case berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE:
		if state == berthv1.TaskState_TASK_STATE_COMPLETE {
			return restartDecision{reason: "task completed and restart policy is on-failure"}
		}
	}
	endedAt := last.GetStatus().GetTimestamp().AsTime()
	restarts := uint32(1)
	if !ranFor(last, ranWell) {
		restarts = last.Restarts + 1
	}
	if max := policy.GetMaxAttempts(); max > 0 && attempts(policy, ended, restarts, now) > max {
		return restartDecision{reason: reasonAttemptsExhausted}
	}
	delay := backoff(restarts)
	if d := policy.GetDelay(); d != nil {
		delay = d.AsDuration()
	}
	return restartDecision{restart: true, at: endedAt.Add(delay), restarts: restarts}
}

// attempts counts the failures the max_attempts limit weighs: those within
// the window, or, without a window, the failures in a row.
func attempts(policy *berthv1.RestartPolicy, ended []*berthv1.Task, restarts uint32, now time.Time) uint64 {
	window := policy.GetWindow().AsDuration()
	if window <= 0 {
		return uint64(restarts)
	}
	var n uint64
	for _, t := range ended {
		if t.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING || !taskstate.Terminal(t.GetStatus().GetState()) {
			continue
		}
		if t.GetStatus().GetTimestamp().AsTime().Before(now.Add(-window)) {
			continue
		}
		n++
	}
	return n
}

// backoff is the delay before the replacement that follows restarts
// failures in a row.
func backoff(restarts uint32) time.Duration {
	if restarts <= 1 {
		return 0
	}
	d := backoffBase
	for i := uint32(2); i < restarts && d < backoffCap; i++ {
		d *= 2
	}
	return min(d, backoffCap)
}

// ranFor reports whether t was running for at least d before it ended.
func ranFor(t *berthv1.Task, d time.Duration) bool {
	var started time.Time
	for _, h := range t.History {
		if h.State == berthv1.TaskState_TASK_STATE_RUNNING {
			started = h.At.AsTime()
		}
	}
	if started.IsZero() {
		return false
	}
	return t.GetStatus().GetTimestamp().AsTime().Sub(started) >= d
}
