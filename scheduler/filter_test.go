package scheduler

import (
	"reflect"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestScheduleFiltersAndStrategies(t *testing.T) {
	const (
		binpack = berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK
		spread  = berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD
		failed  = berthv1.TaskState_TASK_STATE_FAILED
	)
	failedOn := func(id, svc, node string) *berthv1.Task { return task(id, svc, running(node), state(failed)) }
	tests := []struct {
		name     string
		strategy berthv1.SchedulingStrategy
		nodes    []*berthv1.Node
		tasks    []*berthv1.Task
		failed   []*berthv1.Task
		pending  []*berthv1.Task
		want     Plan
	}{
		{
			name:    "platform compares normalized names",
			nodes:   []*berthv1.Node{node("n1", platformOf("linux", "x86_64")), node("n2", platformOf("linux", "arm64")), node("n3", platformOf("Linux", "aarch64"))},
			pending: []*berthv1.Task{task("a1", "web", runsOn("linux/arm64")), task("a2", "web", runsOn("linux/arm64")), task("b1", "api", runsOn("linux/amd64"))},
			want:    Plan{Assignments: placed("a1", "n2", "a2", "n3", "b1", "n1")},
		},
		{
			name:    "platform not supported anywhere",
			nodes:   []*berthv1.Node{node("n1", platformOf("linux", "amd64")), node("n2", platformOf("linux", "amd64")), node("n3")},
			pending: []*berthv1.Task{task("a1", "web", runsOn("linux/arm64"))},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "no suitable node (platform linux/arm64 not supported on 3 nodes)"}}},
		},
		{
			name:    "several platforms explained together",
			nodes:   []*berthv1.Node{node("n1", platformOf("windows", "amd64")), node("n2", platformOf("linux", "riscv64"))},
			pending: []*berthv1.Task{task("a1", "web", runsOn("linux/amd64", "linux/arm64"))},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "no suitable node (platforms linux/amd64, linux/arm64 not supported on 2 nodes)"}}},
		},
		{
			name: "empty fields match any, a node of unknown platform only them",
			nodes: []*berthv1.Node{
				node("n1"), node("n2", platformOf("linux", "arm64")),
			},
			pending: []*berthv1.Task{
				task("a1", "web", runsOn("linux/")), task("a2", "web", runsOn("linux/")),
				task("b1", "api"), task("b2", "api"),
				task("c1", "any", runsOn("/")),
			},
			want: Plan{Assignments: placed("a1", "n2", "a2", "n2", "b1", "n1", "b2", "n2", "c1", "n1")},
		},
		{
			name:    "a variant counts only when the node names one",
			nodes:   []*berthv1.Node{node("n1", platformOf("linux", "arm")), node("n2", platformOf("linux", "amd64"))},
			pending: []*berthv1.Task{task("a1", "web", runsOn("linux/armhf")), task("a2", "web", runsOn("linux/arm/v7"))},
			want:    Plan{Assignments: placed("a1", "n1", "a2", "n1")},
		},
		{
			name:  "max replicas per node, then nowhere",
			nodes: []*berthv1.Node{node("n1"), node("n2"), node("n3")},
			pending: []*berthv1.Task{
				task("a1", "web", maxPerNode(2)), task("a2", "web", maxPerNode(2)), task("a3", "web", maxPerNode(2)),
				task("a4", "web", maxPerNode(2)), task("a5", "web", maxPerNode(2)), task("a6", "web", maxPerNode(2)),
				task("a7", "web", maxPerNode(2)),
			},
			want: Plan{
				Assignments: placed("a1", "n1", "a2", "n2", "a3", "n3", "a4", "n1", "a5", "n2", "a6", "n3"),
				Unplaced:    []Unplaced{{TaskID: "a7", Reason: "no suitable node (max 2 replicas of the service per node on 3 nodes)"}},
			},
		},
		{
			name:    "max replicas counts running tasks",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			tasks:   []*berthv1.Task{task("r1", "web", running("n1"))},
			pending: []*berthv1.Task{task("a1", "web", maxPerNode(1)), task("a2", "web", maxPerNode(1))},
			want: Plan{
				Assignments: placed("a1", "n2"),
				Unplaced:    []Unplaced{{TaskID: "a2", Reason: "no suitable node (max 1 replica of the service per node on 2 nodes)"}},
			},
		},
		{
			name:    "max replicas on a preset node",
			nodes:   []*berthv1.Node{node("n1")},
			tasks:   []*berthv1.Task{task("r1", "agent", running("n1"))},
			pending: []*berthv1.Task{task("g1", "agent", on("n1"), maxPerNode(1))},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "g1", Reason: "node n1 is not suitable (max 1 replica of the service per node on 1 node)"}}},
		},
		{
			name:     "binpack fills the fullest node first",
			strategy: binpack,
			nodes:    []*berthv1.Node{node("n1"), node("n2"), node("n3")},
			tasks:    []*berthv1.Task{task("r1", "db", running("n2"), reserve(2000, 0))},
			pending: []*berthv1.Task{
				task("a1", "web", reserve(1000, 0)), task("a2", "web", reserve(1000, 0)), task("a3", "web", reserve(1000, 0)),
			},
			want: Plan{Assignments: placed("a1", "n2", "a2", "n2", "a3", "n1")},
		},
		{
			name:     "binpack adds cpu and memory shares",
			strategy: binpack,
			nodes:    []*berthv1.Node{node("n1"), node("n2")},
			tasks: []*berthv1.Task{
				task("r1", "db", running("n1"), reserve(2000, 0)),
				task("r2", "cache", running("n2"), reserve(1200, 8*gib*3/10)),
			},
			pending: []*berthv1.Task{task("a1", "web")},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:     "binpack without reservations stacks by task count",
			strategy: binpack,
			nodes:    []*berthv1.Node{node("n1"), node("n2"), node("n3")},
			tasks:    []*berthv1.Task{task("r1", "db", running("n3"))},
			pending:  []*berthv1.Task{task("a1", "web"), task("a2", "web"), task("a3", "api")},
			want:     Plan{Assignments: placed("a1", "n3", "a2", "n3", "a3", "n3")},
		},
		{
			name:     "binpack avoids a node where the service keeps failing",
			strategy: binpack,
			nodes:    []*berthv1.Node{node("n1"), node("n2")},
			tasks:    []*berthv1.Task{task("r1", "db", running("n1"), reserve(2000, 0))},
			failed:   []*berthv1.Task{failedOn("f1", "web", "n1"), failedOn("f2", "web", "n1")},
			pending:  []*berthv1.Task{task("a1", "web")},
			want:     Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:     "binpack breaks ties by image",
			strategy: binpack,
			nodes:    []*berthv1.Node{node("n1"), node("n2", images("docker.io/library/redis:latest"))},
			pending:  []*berthv1.Task{task("a1", "cache", image("redis"))},
			want:     Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:     "binpack honours max replicas per node",
			strategy: binpack,
			nodes:    []*berthv1.Node{node("n1"), node("n2")},
			pending: []*berthv1.Task{
				task("a1", "web", maxPerNode(2)), task("a2", "web", maxPerNode(2)), task("a3", "web", maxPerNode(2)),
			},
			want: Plan{Assignments: placed("a1", "n1", "a2", "n1", "a3", "n2")},
		},
		{
			name:     "a service's strategy overrides the cluster's",
			strategy: binpack,
			nodes:    []*berthv1.Node{node("n1"), node("n2")},
			pending: []*berthv1.Task{
				task("a1", "web", strategy(spread)), task("a2", "web", strategy(spread)),
				task("b1", "api"), task("b2", "api"),
			},
			want: Plan{Assignments: placed("a1", "n1", "a2", "n2", "b1", "n1", "b2", "n1")},
		},
		{
			name:    "a service can binpack in a spread cluster",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			tasks:   []*berthv1.Task{task("r1", "db", running("n2"))},
			pending: []*berthv1.Task{task("a1", "web", strategy(binpack)), task("a2", "web", strategy(binpack))},
			want:    Plan{Assignments: placed("a1", "n2", "a2", "n2")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := Snapshot{Nodes: tt.nodes, Tasks: tt.tasks, Failed: tt.failed, Strategy: tt.strategy}
			got := Schedule(snap, tt.pending)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Schedule() =\n  %+v\nwant\n  %+v", got, tt.want)
			}
			if scan := schedule(snap, tt.pending, pickByScan); !reflect.DeepEqual(got, scan) {
				t.Errorf("Schedule() = %+v, but a full scan gives %+v", got, scan)
			}
		})
	}
}

func TestNewPlatform(t *testing.T) {
	tests := []struct {
		os, arch string
		want     platform
	}{
		{"linux", "x86_64", platform{"linux", "amd64", ""}},
		{"Linux", "AArch64", platform{"linux", "arm64", ""}},
		{"linux", "arm64/v8", platform{"linux", "arm64", ""}},
		{"linux", "arm", platform{"linux", "arm", ""}},
		{"linux", "arm/7", platform{"linux", "arm", "v7"}},
		{"macos", "", platform{"darwin", "", ""}},
		{"", "i386", platform{"", "386", ""}},
		{"", "", platform{}},
	}
	for _, tt := range tests {
		if got := newPlatform(tt.os, tt.arch); got != tt.want {
			t.Errorf("newPlatform(%q, %q) = %+v, want %+v", tt.os, tt.arch, got, tt.want)
		}
	}
}
