package taskstate

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestAdvanceNeverGoesBack(t *testing.T) {
	now := time.Unix(100, 0)
	task := &berthv1.Task{Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}}
	tests := []struct {
		name    string
		state   berthv1.TaskState
		message string
		changed bool
	}{
		{"backwards", berthv1.TaskState_TASK_STATE_STARTING, "", false},
		{"same state, same details", berthv1.TaskState_TASK_STATE_RUNNING, "", false},
		{"same state, new message", berthv1.TaskState_TASK_STATE_RUNNING, "healthy", true},
		{"forward", berthv1.TaskState_TASK_STATE_FAILED, "exit 1", true},
		{"back from terminal", berthv1.TaskState_TASK_STATE_RUNNING, "", false},
	}
	for _, tt := range tests {
		if got := Set(task, tt.state, tt.message, now); got != tt.changed {
			t.Errorf("%s: changed = %v, want %v", tt.name, got, tt.changed)
		}
	}
	if task.Status.State != berthv1.TaskState_TASK_STATE_FAILED {
		t.Fatalf("state = %v, want failed", task.Status.State)
	}
	if len(task.History) != 1 || task.History[0].State != berthv1.TaskState_TASK_STATE_FAILED {
		t.Fatalf("history = %v, want one step to failed", task.History)
	}
}

func TestNamesAndClasses(t *testing.T) {
	if got := Name(berthv1.TaskState_TASK_STATE_RUNNING); got != "running" {
		t.Fatalf("Name = %q", got)
	}
	if Terminal(berthv1.TaskState_TASK_STATE_RUNNING) || !Terminal(berthv1.TaskState_TASK_STATE_COMPLETE) {
		t.Fatalf("Terminal is wrong around running/complete")
	}
	running := &berthv1.Task{DesiredState: berthv1.TaskState_TASK_STATE_RUNNING, Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_PENDING}}
	stopping := &berthv1.Task{DesiredState: berthv1.TaskState_TASK_STATE_SHUTDOWN, Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}}
	if !Active(running) || Active(stopping) || !Live(stopping) {
		t.Fatalf("Active/Live are wrong")
	}
}

func TestAdvanceRecordsHealth(t *testing.T) {
	task := &berthv1.Task{Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}}
	st := &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING, Health: berthv1.Health_HEALTH_HEALTHY}
	if !Advance(task, st, time.Unix(1, 0)) || task.Status.Health != berthv1.Health_HEALTH_HEALTHY {
		t.Fatalf("a health change in the same state was not recorded: %v", task.Status)
	}
	if len(task.History) != 0 {
		t.Fatalf("a health change added a state step: %v", task.History)
	}
}

func TestInService(t *testing.T) {
	run, stop := berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_SHUTDOWN
	tests := []struct {
		state, desired berthv1.TaskState
		health         berthv1.Health
		want           bool
	}{
		{run, run, berthv1.Health_HEALTH_UNSPECIFIED, true},
		{run, run, berthv1.Health_HEALTH_HEALTHY, true},
		{run, run, berthv1.Health_HEALTH_STARTING, false},
		{run, run, berthv1.Health_HEALTH_UNHEALTHY, false},
		{run, stop, berthv1.Health_HEALTH_HEALTHY, false},
		{berthv1.TaskState_TASK_STATE_STARTING, run, berthv1.Health_HEALTH_UNSPECIFIED, false},
	}
	for _, tt := range tests {
		task := &berthv1.Task{DesiredState: tt.desired, Status: &berthv1.TaskStatus{State: tt.state, Health: tt.health}}
		if got := InService(task); got != tt.want {
			t.Errorf("%v desired %v health %v: in service = %v, want %v", tt.state, tt.desired, tt.health, got, tt.want)
		}
	}
}

func TestSlot(t *testing.T) {
	if got := Slot(&berthv1.Task{Slot: 3, NodeId: "n1"}); got != "3" {
		t.Errorf("replicated slot = %q, want 3", got)
	}
	if got := Slot(&berthv1.Task{NodeId: "n1"}); got != "node:n1" {
		t.Errorf("global slot = %q, want node:n1", got)
	}
}
