package cli

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestEnumWords(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{taskStateWord(berthv1.TaskState_TASK_STATE_NEW), "new"},
		{taskStateWord(berthv1.TaskState_TASK_STATE_PENDING), "pending"},
		{taskStateWord(berthv1.TaskState_TASK_STATE_RUNNING), "running"},
		{taskStateWord(berthv1.TaskState_TASK_STATE_ORPHANED), "orphaned"},
		{taskStateWord(berthv1.TaskState_TASK_STATE_UNSPECIFIED), ""},
		{nodeStatusWord(berthv1.NodeStatus_NODE_STATUS_READY), "ready"},
		{nodeStatusWord(berthv1.NodeStatus_NODE_STATUS_UNREACHABLE), "unreachable"},
		{availabilityWord(berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN), "drain"},
		{serviceModeWord(berthv1.ServiceMode_SERVICE_MODE_GLOBAL), "global"},
		{enumWord(berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE.String(), "RESTART_CONDITION_"), "on-failure"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("word = %q, want %q", tt.got, tt.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		before time.Duration
		want   string
	}{
		{12 * time.Second, "12s ago"},
		{3*time.Minute + 10*time.Second, "3m ago"},
		{5 * time.Hour, "5h ago"},
		{72 * time.Hour, "3d ago"},
		{-time.Second, "just now"},
	}
	for _, tt := range tests {
		if got := ago(now, timestamppb.New(now.Add(-tt.before))); got != tt.want {
			t.Errorf("ago(%v) = %q, want %q", tt.before, got, tt.want)
		}
	}
	if got := ago(now, nil); got != "" {
		t.Errorf("ago(nil) = %q, want empty", got)
	}
}

func TestColumns(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{bytesColumn(512 << 20), "512MiB"},
		{bytesColumn(8 << 30), "8GiB"},
		{bytesColumn(1536), "1.5KiB"},
		{bytesColumn(100), "100B"},
		{coresColumn(1500), "1.5"},
		{coresColumn(2000), "2"},
		{shortDigest("sha256:0123456789abcdef0123"), "0123456789ab"},
		{port{Target: 80, Published: 8080, Protocol: "tcp"}.String(), "8080->80/tcp"},
		{port{Target: 53, Protocol: "udp"}.String(), "53/udp"},
		{port{Target: 80, Published: 80, HostIP: "127.0.0.1"}.String(), "127.0.0.1:80->80/tcp"},
		{labelsColumn(map[string]string{"zone": "eu", "disk": "ssd"}), "disk=ssd,zone=eu"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("column = %q, want %q", tt.got, tt.want)
		}
	}
}
