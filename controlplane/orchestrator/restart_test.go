package orchestrator

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ended is a finished task that ran for ran (0: never ran) and had
// restarts failures in a row before it.
func ended(state, desired berthv1.TaskState, at time.Time, ran time.Duration, restarts uint32) *berthv1.Task {
	t := &berthv1.Task{DesiredState: desired, Restarts: restarts, Status: &berthv1.TaskStatus{State: state, Timestamp: timestamppb.New(at)}}
	if ran > 0 {
		t.History = []*berthv1.StateTransition{{State: berthv1.TaskState_TASK_STATE_RUNNING, At: timestamppb.New(at.Add(-ran))}}
	}
	return t
}

func TestDecideRestart(t *testing.T) {
	now := time.Unix(1000, 0)
	run := berthv1.TaskState_TASK_STATE_RUNNING
	failed := berthv1.TaskState_TASK_STATE_FAILED
	complete := berthv1.TaskState_TASK_STATE_COMPLETE
	any := berthv1.RestartCondition_RESTART_CONDITION_ANY
	policy := func(c berthv1.RestartCondition, delay *durationpb.Duration, max uint64, window time.Duration) *berthv1.RestartPolicy {
		return &berthv1.RestartPolicy{Condition: c, Delay: delay, MaxAttempts: max, Window: durationpb.New(window)}
	}
	fixed := durationpb.New(2 * time.Second)
	tests := []struct {
		name     string
		policy   *berthv1.RestartPolicy
		ended    []*berthv1.Task
		restart  bool
		at       time.Time
		restarts uint32
	}{
		{"first failure is replaced at once", policy(any, nil, 0, 0),
			[]*berthv1.Task{ended(failed, run, now, time.Second, 0)}, true, now, 1},
		{"second failure in a row waits the base", policy(any, nil, 0, 0),
			[]*berthv1.Task{ended(failed, run, now, time.Second, 1)}, true, now.Add(backoffBase), 2},
		{"the backoff doubles", policy(any, nil, 0, 0),
			[]*berthv1.Task{ended(failed, run, now, 0, 3)}, true, now.Add(4 * backoffBase), 4},
		{"the backoff is capped", policy(any, nil, 0, 0),
			[]*berthv1.Task{ended(failed, run, now, 0, 60)}, true, now.Add(backoffCap), 61},
		{"a task that ran well resets the count", policy(any, nil, 0, 0),
			[]*berthv1.Task{ended(failed, run, now, ranWell, 7)}, true, now, 1},
		{"an explicit delay is kept", policy(any, fixed, 0, 0),
			[]*berthv1.Task{ended(complete, run, now.Add(-time.Second), time.Second, 0)}, true, now.Add(time.Second), 1},
		{"none never restarts", policy(berthv1.RestartCondition_RESTART_CONDITION_NONE, nil, 0, 0),
			[]*berthv1.Task{ended(failed, run, now, 0, 0)}, false, time.Time{}, 0},
		{"on-failure skips completed", policy(berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, nil, 0, 0),
			[]*berthv1.Task{ended(complete, run, now, 0, 0)}, false, time.Time{}, 0},
		{"on-failure restarts failed", policy(berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, fixed, 0, 0),
			[]*berthv1.Task{ended(failed, run, now, 0, 0)}, true, now.Add(2 * time.Second), 1},
		{"stopped on purpose restarts now", policy(berthv1.RestartCondition_RESTART_CONDITION_NONE, nil, 0, 0),
			[]*berthv1.Task{ended(berthv1.TaskState_TASK_STATE_SHUTDOWN, berthv1.TaskState_TASK_STATE_SHUTDOWN, now.Add(-time.Hour), 0, 4)}, true, now, 0},
		{"max attempts counts failures in a row", policy(any, nil, 3, 0),
			[]*berthv1.Task{ended(failed, run, now, 0, 3)}, false, time.Time{}, 0},
		{"max attempts not reached yet", policy(any, nil, 3, 0),
			[]*berthv1.Task{ended(failed, run, now, 0, 2)}, true, now.Add(2 * backoffBase), 3},
		{"max attempts reached", policy(any, nil, 2, 0),
			[]*berthv1.Task{ended(failed, run, now, 0, 2), ended(failed, run, now, 0, 1), ended(failed, run, now, 0, 0)}, false, time.Time{}, 0},
		{"attempts outside the window do not count", policy(any, fixed, 1, time.Minute),
			[]*berthv1.Task{ended(failed, run, now, 0, 1), ended(failed, run, now.Add(-time.Hour), 0, 0)}, true, now.Add(2 * time.Second), 2},
	}
	for _, tt := range tests {
		d := decideRestart(tt.policy, tt.ended, now)
		if d.restart != tt.restart || (tt.restart && (!d.at.Equal(tt.at) || d.restarts != tt.restarts)) {
			t.Errorf("%s: got restart=%v at=%v restarts=%d, want %v at %v restarts=%d", tt.name, d.restart, d.at, d.restarts, tt.restart, tt.at, tt.restarts)
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{0, 0, backoffBase, 2 * backoffBase, 4 * backoffBase, 8 * backoffBase}
	for n, w := range want {
		if got := backoff(uint32(n)); got != w {
			t.Errorf("backoff(%d) = %v, want %v", n, got, w)
		}
	}
	if got := backoff(1000); got != backoffCap {
		t.Errorf("backoff(1000) = %v, want the cap %v", got, backoffCap)
	}
}
