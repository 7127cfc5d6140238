package containerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
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

func TestTailOffset(t *testing.T) {
	tests := []struct {
		content string
		tail    int64
		want    string
	}{
		{"a\nb\nc\n", -1, "a\nb\nc\n"},
		{"a\nb\nc\n", 0, ""},
		{"a\nb\nc\n", 1, "c\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\n\nc\n", 2, "\nc\n"},
		{"", 5, ""},
		{strings.Repeat("x", 40000) + "\n" + strings.Repeat("y", 40000) + "\n", 1, strings.Repeat("y", 40000) + "\n"},
	}
	for _, tc := range tests {
		r := strings.NewReader(tc.content)
		off, err := tailOffset(r, int64(len(tc.content)), tc.tail)
		if err != nil {
			t.Fatalf("tailOffset: %v", err)
		}
		if got := tc.content[off:]; got != tc.want {
			t.Errorf("tailOffset(%.20q, %d) leaves %.20q, want %.20q", tc.content, tc.tail, got, tc.want)
		}
	}
}

func TestReadLog(t *testing.T) {
	long := strings.Repeat("z", 100<<10) // longer than the reader's buffer
	path := filepath.Join(t.TempDir(), "c.log")
	if err := os.WriteFile(path, []byte("one\n"+long+"\n\nlast"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	err = readLog(t.Context(), f, -1, nil, func(l runtime.LogLine) error {
		got = append(got, string(l.Line))
		return nil
	})
	if err != nil {
		t.Fatalf("readLog: %v", err)
	}
	want := []string{"one", long, "", "last"}
	if len(got) != len(want) {
		t.Fatalf("readLog gave %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %.20q (len %d), want %.20q (len %d)", i, got[i], len(got[i]), want[i], len(want[i]))
		}
	}
}
