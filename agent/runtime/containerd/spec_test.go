package containerd

import (
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestProcessArgs(t *testing.T) {
	imageEntrypoint, imageCmd := []string{"/entry"}, []string{"serve", "--port=80"}
	tests := []struct {
		name                string
		entrypoint, command []string
		want                string
	}{
		{"image defaults", nil, nil, "/entry serve --port=80"},
		{"command replaces cmd", nil, []string{"debug"}, "/entry debug"},
		{"entrypoint clears cmd", []string{"sh"}, nil, "sh"},
		{"entrypoint and command", []string{"sh", "-c"}, []string{"echo hi"}, "sh -c echo hi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := processArgs(imageEntrypoint, imageCmd, runtime.ContainerSpec{Entrypoint: tc.entrypoint, Command: tc.command})
			if strings.Join(got, " ") != tc.want {
				t.Errorf("processArgs = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCPULimits(t *testing.T) {
	tests := []struct {
		milli  int64
		quota  int64
		shares uint64
	}{
		{1000, 100000, 1024},
		{500, 50000, 512},
		{2500, 250000, 2560},
		{1, 1000, 2}, // kernel minimums
	}
	for _, tc := range tests {
		quota, period, shares := cpuLimits(tc.milli)
		if quota != tc.quota || period != 100000 || shares != tc.shares {
			t.Errorf("cpuLimits(%d) = %d/%d shares %d, want %d/100000 shares %d", tc.milli, quota, period, shares, tc.quota, tc.shares)
		}
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	spec := runtime.ContainerSpec{
		Labels:     map[string]string{"team": "a", LabelOwner: "spoofed"},
		Ports:      []runtime.Port{{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}},
		StopSignal: "SIGQUIT",
	}
	labels, err := containerLabels("agent-1", spec, runtime.Attachment{IP: "10.1.2.3"})
	if err != nil {
		t.Fatalf("containerLabels: %v", err)
	}
	if labels[LabelOwner] != "agent-1" || labels[labelStopSignal] != "SIGQUIT" {
		t.Errorf("labels = %v, want owner agent-1 and the stop signal", labels)
	}
	var st runtime.Status
	statusFromLabels(&st, labels)
	if st.Address != "10.1.2.3" || len(st.Ports) != 1 || st.Ports[0] != spec.Ports[0] {
		t.Errorf("status = %+v, want the address and port back", st)
	}
	if len(st.Labels) != 1 || st.Labels["team"] != "a" {
		t.Errorf("status labels = %v, want only team=a", st.Labels)
	}
}

func TestInWritableMount(t *testing.T) {
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc"},
		{Destination: "/data", Type: "bind", Options: []string{"rbind", "rw"}},
		{Destination: "/conf", Type: "bind", Options: []string{"rbind", "ro"}},
		{Destination: "/tmp", Type: "tmpfs"},
	}
	for p, want := range map[string]bool{
		"/data": true, "/data/x/y": true, "/tmp/f": true,
		"/datafile": false, "/conf/x": false, "/proc/1/root": false, "/etc/passwd": false, "/": false,
	} {
		if got := inWritableMount(mounts, p); got != want {
			t.Errorf("inWritableMount(%s) = %v, want %v", p, got, want)
		}
	}
}
