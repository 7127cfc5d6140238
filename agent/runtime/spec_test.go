package runtime

import (
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in      string
		want    syscall.Signal
		wantErr bool
	}{
		{"SIGTERM", syscall.SIGTERM, false},
		{"term", syscall.SIGTERM, false},
		{"KILL", syscall.SIGKILL, false},
		{"SIGUSR1", syscall.SIGUSR1, false},
		{"9", syscall.SIGKILL, false},
		{"SIGNOPE", 0, true},
		{"0", 0, true},
		{"99", 0, true},
		{"", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseSignal(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
