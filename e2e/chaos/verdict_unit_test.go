package chaos

import (
	"slices"
	"testing"
)

func TestLostWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []write
		final  map[string]string
		lost   int
	}{
		{"kept", []write{{"a", "1", true}, {"a", "2", true}}, map[string]string{"a": "2"}, 0},
		{"overwritten by an older value", []write{{"a", "1", true}, {"a", "2", true}}, map[string]string{"a": "1"}, 1},
		{"missing", []write{{"a", "1", true}}, map[string]string{}, 1},
		{"a later unacknowledged write may have landed", []write{{"a", "1", true}, {"a", "3", false}}, map[string]string{"a": "3"}, 0},
		{"an earlier unacknowledged write may not win", []write{{"a", "3", false}, {"a", "1", true}}, map[string]string{"a": "3"}, 1},
		{"acknowledged delete", []write{{"a", "1", true}, {"a", "", true}}, map[string]string{}, 0},
		{"deleted app came back", []write{{"a", "1", true}, {"a", "", true}}, map[string]string{"a": "1"}, 1},
		{"only unacknowledged", []write{{"a", "1", false}}, map[string]string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lostWrites(tc.writes, tc.final); len(got) != tc.lost {
				t.Fatalf("lostWrites = %q, want %d lost", got, tc.lost)
			}
		})
	}
}

func TestDuplicateSlots(t *testing.T) {
	tasks := map[string]taskRow{
		"t1": {ID: "t1", App: "a", Service: "web", Slot: 1},
		"t2": {ID: "t2", App: "a", Service: "web", Slot: 1},
		"t3": {ID: "t3", App: "a", Service: "web", Slot: 2},
		"t4": {ID: "t4", App: "b", Service: "web", Slot: 1},
	}
	for _, tc := range []struct {
		running []string
		dups    int
	}{
		{[]string{"t1", "t3", "t4"}, 0},
		{[]string{"t1", "t2", "t3"}, 1},
		{[]string{"t1", "t2", "t3", "unknown"}, 1},
		{nil, 0},
	} {
		if got := duplicateSlots(tc.running, tasks); len(got) != tc.dups {
			t.Errorf("duplicateSlots(%v) = %q, want %d", tc.running, got, tc.dups)
		}
	}
}

func TestOrphans(t *testing.T) {
	tasks := map[string]taskRow{
		"run":  {ID: "run", App: "a", Service: "web", Slot: 1, State: "running", DesiredState: "running"},
		"gone": {ID: "gone", App: "a", Service: "web", Slot: 2, State: "shutdown", DesiredState: "shutdown"},
	}
	for _, tc := range []struct {
		name       string
		containers map[string]bool
		netns      []string
		want       int
	}{
		{"all owned", map[string]bool{"run": true, "gone": false}, []string{"run"}, 0},
		{"a retired task still runs", map[string]bool{"run": true, "gone": true}, nil, 1},
		{"a container of no task", map[string]bool{"run": true, "stray": true}, nil, 1},
		{"a running task without container", map[string]bool{}, nil, 1},
		{"a namespace of a stopped container", map[string]bool{"run": true, "gone": false}, []string{"run", "gone"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := orphans(tasks, tc.containers, tc.netns)
			if len(got) != tc.want {
				t.Fatalf("orphans = %q, want %d", got, tc.want)
			}
			if !slices.IsSorted(got) {
				t.Fatalf("orphans are not sorted: %q", got)
			}
		})
	}
}

func TestComing(t *testing.T) {
	for _, tc := range []struct {
		state, desired string
		want           bool
	}{
		{"pending", "running", true},
		{"starting", "running", true},
		{"running", "running", false},
		{"orphaned", "running", false},
		{"failed", "running", false},
		{"pending", "shutdown", false},
	} {
		if got := (taskRow{State: tc.state, DesiredState: tc.desired}).coming(); got != tc.want {
			t.Errorf("a task %s, desired %s: coming() = %v, want %v", tc.state, tc.desired, got, tc.want)
		}
	}
}
