package scheduler

import (
	"reflect"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestRebalance(t *testing.T) {
	const (
		binpack  = berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK
		drain    = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
		failed   = berthv1.TaskState_TASK_STATE_FAILED
		spreadDC = "spread=node.labels.zone"
	)
	web := func(id, nodeID string, opts ...taskOpt) *berthv1.Task {
		return task(id, "web", append([]taskOpt{running(nodeID)}, opts...)...)
	}
	moved := func(triples ...string) []Move {
		var out []Move
		for i := 0; i+2 < len(triples); i += 3 {
			out = append(out, Move{TaskID: triples[i], FromNodeID: triples[i+1], ToNodeID: triples[i+2]})
		}
		return out
	}
	three := []*berthv1.Node{node("n1"), node("n2"), node("n3")}
	tests := []struct {
		name     string
		strategy berthv1.SchedulingStrategy
		nodes    []*berthv1.Node
		service  []*berthv1.Task
		others   []*berthv1.Task
		failed   []*berthv1.Task
		limit    int
		want     []Move
	}{
		{
			name:    "fullest node to the emptiest until within one",
			nodes:   three,
			service: []*berthv1.Task{web("w1", "n1"), web("w2", "n1"), web("w3", "n1"), web("w4", "n1")},
			limit:   10,
			want:    moved("w1", "n1", "n2", "w2", "n1", "n3"),
		},
		{
			name:    "limit caps the moves",
			nodes:   three,
			service: []*berthv1.Task{web("w1", "n1"), web("w2", "n1"), web("w3", "n1"), web("w4", "n1")},
			limit:   1,
			want:    moved("w1", "n1", "n2"),
		},
		{
			name:    "balanced service stays",
			nodes:   three,
			service: []*berthv1.Task{web("w1", "n1"), web("w2", "n1"), web("w3", "n2"), web("w4", "n3")},
			limit:   10,
		},
		{
			name:     "binpack cluster is not rebalanced",
			strategy: binpack,
			nodes:    three,
			service:  []*berthv1.Task{web("w1", "n1"), web("w2", "n1"), web("w3", "n1")},
			limit:    10,
		},
		{
			name:    "binpack service is not rebalanced",
			nodes:   three,
			service: []*berthv1.Task{web("w1", "n1", strategy(binpack)), web("w2", "n1", strategy(binpack)), web("w3", "n1", strategy(binpack))},
			limit:   10,
		},
		{
			name: "target must fit while the source still holds the task",
			nodes: []*berthv1.Node{
				node("n1"), node("n2"), node("n3", availability(drain)), node("n4", capacity(1000, 8*gib)),
			},
			service: []*berthv1.Task{
				web("w1", "n1", reserve(1000, 0)), web("w2", "n1", reserve(1000, 0)), web("w3", "n1", reserve(1000, 0)),
			},
			others: []*berthv1.Task{task("r1", "db", running("n2"), reserve(3500, 0))},
			limit:  10,
			want:   moved("w1", "n1", "n4"),
		},
		{
			name:  "constraints hold",
			nodes: []*berthv1.Node{node("n1", labels("zone", "eu")), node("n2", labels("zone", "us")), node("n3", labels("zone", "eu"))},
			service: []*berthv1.Task{
				web("w1", "n1", constraints("node.labels.zone==eu")), web("w2", "n1", constraints("node.labels.zone==eu")),
				web("w3", "n1", constraints("node.labels.zone==eu")),
			},
			limit: 10,
			want:  moved("w1", "n1", "n3"),
		},
		{
			name:    "host port taken on a target",
			nodes:   three,
			service: []*berthv1.Task{web("w1", "n1", publish(8080, "tcp", "")), web("w2", "n1", publish(9090, "tcp", "")), web("w3", "n1")},
			others:  []*berthv1.Task{task("r1", "proxy", running("n2"), publish(8080, "tcp", "")), task("r2", "proxy", running("n3"), publish(8080, "tcp", ""))},
			limit:   10,
			want:    moved("w2", "n1", "n2", "w3", "n1", "n3"),
		},
		{
			name:    "never onto a node where the service keeps failing",
			nodes:   three,
			service: []*berthv1.Task{web("w1", "n1"), web("w2", "n1"), web("w3", "n1")},
			failed: []*berthv1.Task{
				task("f1", "web", running("n2"), state(failed)), task("f2", "web", running("n2"), state(failed)),
			},
			limit: 10,
			want:  moved("w1", "n1", "n3"),
		},
		{
			name:  "preference buckets first, then nodes",
			nodes: []*berthv1.Node{node("n1", labels("zone", "eu")), node("n2", labels("zone", "eu")), node("n3", labels("zone", "us"))},
			service: []*berthv1.Task{
				web("w1", "n1", preferences(spreadDC)), web("w2", "n1", preferences(spreadDC)),
				web("w3", "n2", preferences(spreadDC)), web("w4", "n2", preferences(spreadDC)),
			},
			limit: 10,
			// eu holds 4 and us none: one from each eu node; per node
			// alone, a single move would do.
			want: moved("w1", "n1", "n3", "w3", "n2", "n3"),
		},
		{
			name:  "without preferences the same service moves once",
			nodes: []*berthv1.Node{node("n1", labels("zone", "eu")), node("n2", labels("zone", "eu")), node("n3", labels("zone", "us"))},
			service: []*berthv1.Task{
				web("w1", "n1"), web("w2", "n1"), web("w3", "n2"), web("w4", "n2"),
			},
			limit: 10,
			want:  moved("w1", "n1", "n3"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := Snapshot{Nodes: tt.nodes, Tasks: append(append([]*berthv1.Task(nil), tt.service...), tt.others...), Failed: tt.failed, Strategy: tt.strategy}
			got := Rebalance(snap, tt.service, tt.limit)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Rebalance() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
