package scheduler

import (
	"reflect"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// publishRange adds a host-mode published range of ports for target 80.
func publishRange(from, to uint32) taskOpt {
	return func(t *berthv1.Task) {
		t.Spec.Ports = append(t.Spec.Ports, &berthv1.PortSpec{Target: 80, Published: from, PublishedEnd: to, Mode: berthv1.PublishMode_PUBLISH_MODE_HOST})
	}
}

// given is the binding of host port p to target 80.
func given(p uint32) []*berthv1.PortBinding {
	return []*berthv1.PortBinding{{Target: 80, Published: p, Protocol: "tcp"}}
}

func TestSchedulePortRanges(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []*berthv1.Node
		tasks   []*berthv1.Task
		pending []*berthv1.Task
		want    Plan
	}{
		{
			name:    "each task of a node takes a free port of the range",
			nodes:   []*berthv1.Node{node("n1")},
			pending: []*berthv1.Task{task("a1", "web", publishRange(6005, 6006)), task("a2", "web", publishRange(6005, 6006)), task("a3", "web", publishRange(6005, 6006))},
			want: Plan{
				Assignments: []Assignment{{TaskID: "a1", NodeID: "n1", HostPorts: given(6005)}, {TaskID: "a2", NodeID: "n1", HostPorts: given(6006)}},
				Unplaced:    []Unplaced{{TaskID: "a3", Reason: "no suitable node (no free host port in 6005-6006/tcp on 1 node)"}},
			},
		},
		{
			name:  "ports given before and ports in use are skipped",
			nodes: []*berthv1.Node{node("n1")},
			tasks: []*berthv1.Task{
				task("r1", "web", running("n1"), publishRange(6005, 6007), func(t *berthv1.Task) { t.HostPorts = given(6005) }),
				task("r2", "proxy", running("n1"), publish(6006, "tcp", "")),
			},
			pending: []*berthv1.Task{task("a1", "web", publishRange(6005, 6007))},
			want:    Plan{Assignments: []Assignment{{TaskID: "a1", NodeID: "n1", HostPorts: given(6007)}}},
		},
		{
			name:  "a node without a free port is ruled out",
			nodes: []*berthv1.Node{node("n1"), node("n2")},
			tasks: []*berthv1.Task{
				task("r1", "web", running("n1"), publishRange(6005, 6006), func(t *berthv1.Task) { t.HostPorts = given(6005) }),
				task("r2", "proxy", running("n1"), publish(6006, "tcp", "")),
				// Spread alone would pick n1: it has fewer web tasks.
				task("r3", "web", running("n2")), task("r4", "web", running("n2")),
			},
			pending: []*berthv1.Task{task("a1", "web", publishRange(6005, 6006))},
			want:    Plan{Assignments: []Assignment{{TaskID: "a1", NodeID: "n2", HostPorts: given(6005)}}},
		},
		{
			name:    "spread over nodes, each from the start of the range",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			pending: []*berthv1.Task{task("a1", "web", publishRange(7000, 7010)), task("a2", "web", publishRange(7000, 7010))},
			want: Plan{Assignments: []Assignment{
				{TaskID: "a1", NodeID: "n1", HostPorts: given(7000)}, {TaskID: "a2", NodeID: "n2", HostPorts: given(7000)},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Schedule(Snapshot{Nodes: tc.nodes, Tasks: tc.tasks}, tc.pending)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUsageCountsGivenRangePorts(t *testing.T) {
	u := NewUsage()
	u.Update(task("r1", "web", running("n1"), publishRange(6005, 6006), func(t *berthv1.Task) {
		t.HostPorts = given(6005)
		// The agent reports the port it bound: counted once.
		t.Status.Ports = given(6005)
	}))
	plan := Schedule(Snapshot{Nodes: []*berthv1.Node{node("n1")}, Usage: u}, []*berthv1.Task{task("a1", "web", publishRange(6005, 6006))})
	if want := []Assignment{{TaskID: "a1", NodeID: "n1", HostPorts: given(6006)}}; !reflect.DeepEqual(plan.Assignments, want) {
		t.Errorf("assignments %+v, want %+v", plan.Assignments, want)
	}
	u.Remove("r1")
	if u.Len() != 0 || len(u.nodes) != 0 {
		t.Errorf("usage after removing its only task: %d tasks, nodes %v", u.Len(), u.nodes)
	}
}
