package taskstate

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestEndingWords(t *testing.T) {
	const (
		failed   = berthv1.TaskState_TASK_STATE_FAILED
		rejected = berthv1.TaskState_TASK_STATE_REJECTED
		complete = berthv1.TaskState_TASK_STATE_COMPLETE
		orphaned = berthv1.TaskState_TASK_STATE_ORPHANED
	)
	tests := []struct {
		name   string
		st     *berthv1.TaskStatus
		ended  string
		reason string
	}{
		{"exit code only", &berthv1.TaskStatus{State: failed, ExitCode: 1}, "failed (exit code 1)", "exit code 1"},
		{"agent's words for the exit code", &berthv1.TaskStatus{State: failed, ExitCode: 2, Err: "task: non-zero exit (2)"},
			"failed (exit code 2)", "exit code 2"},
		{"error and another exit code", &berthv1.TaskStatus{State: failed, ExitCode: 137, Err: "unhealthy: probe timed out"},
			"failed (unhealthy: probe timed out, exit code 137)", "unhealthy: probe timed out, exit code 137"},
		{"error naming its exit code", &berthv1.TaskStatus{State: failed, ExitCode: 137, Err: "killed (exit code 137)"},
			"failed (killed (exit code 137))", "killed (exit code 137)"},
		{"oom", &berthv1.TaskStatus{State: failed, ExitCode: 137, OomKilled: true, Err: "out of memory: killed at the 16 MiB limit (exit code 137)"},
			"failed (oom)", "out of memory: killed at the 16 MiB limit (exit code 137)"},
		{"rejected", &berthv1.TaskStatus{State: rejected, Err: "no such image"}, "rejected (no such image)", "no such image"},
		{"complete", &berthv1.TaskStatus{State: complete}, "complete", "no reason given"},
		{"orphaned, message only", &berthv1.TaskStatus{State: orphaned, Message: "node n1 is down"}, "orphaned", "node n1 is down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ended(tt.st); got != tt.ended {
				t.Errorf("Ended() = %q, want %q", got, tt.ended)
			}
			if got := EndReason(tt.st); got != tt.reason {
				t.Errorf("EndReason() = %q, want %q", got, tt.reason)
			}
		})
	}
}
