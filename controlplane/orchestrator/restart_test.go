package orchestrator

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func ended(state berthv1.TaskState, desired berthv1.TaskState, at time.Time) *berthv1.Task {
	return &berthv1.Task{DesiredState: desired, Status: &berthv1.TaskStatus{State: state, Timestamp: timestamppb.New(at)}}
}

func TestDecideRestart(t *testing.T) {
	now := time.Unix(1000, 0)
	run := berthv1.TaskState_TASK_STATE_RUNNING
	failed := berthv1.TaskState_TASK_STATE_FAILED
	complete := berthv1.TaskState_TASK_STATE_COMPLETE
	policy := func(c berthv1.RestartCondition, max uint64, window time.Duration) *berthv1.RestartPolicy {
		return &berthv1.RestartPolicy{Condition: c, Delay: durationpb.New(2 * time.Second), MaxAttempts: max, Window: durationpb.New(window)}
	}
	tests := []struct {
		name    string
		policy  *berthv1.RestartPolicy
		ended   []*berthv1.Task
		restart bool
		at      time.Time
	}{
		{"any restarts after delay", policy(berthv1.RestartCondition_RESTART_CONDITION_ANY, 0, 0),
			[]*berthv1.Task{ended(complete, run, now.Add(-time.Second))}, true, now.Add(time.Second)},
		{"none never restarts", policy(berthv1.RestartCondition_RESTART_CONDITION_NONE, 0, 0),
			[]*berthv1.Task{ended(failed, run, now)}, false, time.Time{}},
		{"on-failure skips completed", policy(berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, 0, 0),
			[]*berthv1.Task{ended(complete, run, now)}, false, time.Time{}},
		{"on-failure restarts failed", policy(berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, 0, 0),
			[]*berthv1.Task{ended(failed, run, now)}, true, now.Add(2 * time.Second)},
		{"stopped on purpose restarts now", policy(berthv1.RestartCondition_RESTART_CONDITION_NONE, 0, 0),
			[]*berthv1.Task{ended(berthv1.TaskState_TASK_STATE_SHUTDOWN, berthv1.TaskState_TASK_STATE_SHUTDOWN, now.Add(-time.Hour))}, true, now},
		{"max attempts reached", policy(berthv1.RestartCondition_RESTART_CONDITION_ANY, 2, 0),
			[]*berthv1.Task{ended(failed, run, now), ended(failed, run, now), ended(failed, run, now)}, false, time.Time{}},
		{"attempts outside the window do not count", policy(berthv1.RestartCondition_RESTART_CONDITION_ANY, 1, time.Minute),
			[]*berthv1.Task{ended(failed, run, now), ended(failed, run, now.Add(-time.Hour))}, true, now.Add(2 * time.Second)},
	}
	for _, tt := range tests {
		d := decideRestart(tt.policy, tt.ended, now)
		if d.restart != tt.restart || (tt.restart && !d.at.Equal(tt.at)) {
			t.Errorf("%s: got restart=%v at=%v, want %v at %v", tt.name, d.restart, d.at, tt.restart, tt.at)
		}
	}
}
