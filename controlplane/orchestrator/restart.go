package orchestrator

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
)

// Default restart policy values, as Swarm users know them.
const (
	defaultRestartDelay = 5 * time.Second
)

// restartDecision says whether a slot whose tasks all ended gets a new task,
// and not before when.
type restartDecision struct {
	restart bool
	at      time.Time
	reason  string
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
	switch policy.GetCondition() {
	case berthv1.RestartCondition_RESTART_CONDITION_NONE:
		return restartDecision{reason: "restart policy is none"}
	case berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE:
		if state == berthv1.TaskState_TASK_STATE_COMPLETE {
			return restartDecision{reason: "task completed and restart policy is on-failure"}
		}
	}
	endedAt := last.GetStatus().GetTimestamp().AsTime()
	if max := policy.GetMaxAttempts(); max > 0 {
		window := policy.GetWindow().AsDuration()
		var attempts uint64
		for _, t := range ended {
			if t.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING || !taskstate.Terminal(t.GetStatus().GetState()) {
				continue
			}
			if window > 0 && t.GetStatus().GetTimestamp().AsTime().Before(now.Add(-window)) {
				continue
			}
			attempts++
		}
		if attempts > max {
			return restartDecision{reason: "restart attempts exhausted"}
		}
	}
	delay := defaultRestartDelay
	if d := policy.GetDelay(); d != nil {
		delay = d.AsDuration()
	}
	return restartDecision{restart: true, at: endedAt.Add(delay)}
}
