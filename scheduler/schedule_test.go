package scheduler

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// placed is a shorthand for the expected assignments, in pending order.
func placed(pairs ...string) []Assignment {
	var out []Assignment
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Assignment{TaskID: pairs[i], NodeID: pairs[i+1]})
	}
	return out
}

func TestSchedule(t *testing.T) {
	const (
		down     = berthv1.NodeStatus_NODE_STATUS_DOWN
		pause    = berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE
		drain    = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
		unset    = berthv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED
		failed   = berthv1.TaskState_TASK_STATE_FAILED
		zoneEU   = "node.labels.zone==eu"
		spreadDC = "spread=node.labels.zone"
	)
	tests := []struct {
		name    string
		nodes   []*berthv1.Node
		tasks   []*berthv1.Task
		pending []*berthv1.Task
		want    Plan
	}{
		{
			name:    "spread 4 replicas over 2 nodes",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			pending: []*berthv1.Task{task("a1", "web"), task("a2", "web"), task("a3", "web"), task("a4", "web")},
			want:    Plan{Assignments: placed("a1", "n1", "a2", "n2", "a3", "n1", "a4", "n2")},
		},
		{
			name:    "spread counts the service's running tasks",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			tasks:   []*berthv1.Task{task("r1", "web", running("n1")), task("r2", "web", running("n1"))},
			pending: []*berthv1.Task{task("a1", "web"), task("a2", "web"), task("a3", "web")},
			want:    Plan{Assignments: placed("a1", "n2", "a2", "n2", "a3", "n1")},
		},
		{
			name:  "same-service spread outranks total task count",
			nodes: []*berthv1.Node{node("n1"), node("n2")},
			tasks: []*berthv1.Task{
				task("r1", "db", running("n1")), task("r2", "db", running("n1")), task("r3", "web", running("n2")),
			},
			pending: []*berthv1.Task{task("a1", "web")},
			want:    Plan{Assignments: placed("a1", "n1")},
		},
		{
			name:    "memory reservation excludes a small node",
			nodes:   []*berthv1.Node{node("n1", capacity(4000, 1*gib)), node("n2")},
			pending: []*berthv1.Task{task("a1", "web", reserve(0, 2*gib))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:  "running reservations and the batch use up memory",
			nodes: []*berthv1.Node{node("n1"), node("n2")},
			tasks: []*berthv1.Task{task("r1", "db", running("n1"), reserve(0, 7*gib))},
			pending: []*berthv1.Task{
				task("a1", "web", reserve(0, 4*gib)), task("a2", "web", reserve(0, 4*gib)), task("a3", "web", reserve(0, 4*gib)),
			},
			want: Plan{
				Assignments: placed("a1", "n2", "a2", "n2"),
				Unplaced:    []Unplaced{{TaskID: "a3", Reason: "no suitable node (insufficient memory on 2 nodes)"}},
			},
		},
		{
			name:    "cpu reservation on a node of unknown capacity",
			nodes:   []*berthv1.Node{node("n1", capacity(0, 8*gib))},
			pending: []*berthv1.Task{task("a1", "web", reserve(500, 0)), task("a2", "web")},
			want: Plan{
				Assignments: placed("a2", "n1"),
				Unplaced:    []Unplaced{{TaskID: "a1", Reason: "no suitable node (insufficient cpu on 1 node)"}},
			},
		},
		{
			name:  "terminal snapshot tasks hold nothing",
			nodes: []*berthv1.Node{node("n1")},
			tasks: []*berthv1.Task{task("r1", "db", running("n1"), state(failed), reserve(4000, 8*gib), publish(80, "tcp", ""))},
			pending: []*berthv1.Task{
				task("a1", "web", reserve(4000, 8*gib), publish(80, "tcp", "")),
			},
			want: Plan{Assignments: placed("a1", "n1")},
		},
		{
			name:    "constraint == on a label",
			nodes:   []*berthv1.Node{node("n1", labels("zone", "us")), node("n2", labels("zone", "eu")), node("n3")},
			pending: []*berthv1.Task{task("a1", "web", constraints(zoneEU)), task("a2", "web", constraints(zoneEU))},
			want:    Plan{Assignments: placed("a1", "n2", "a2", "n2")},
		},
		{
			name:    "constraint != on a label matches nodes without it",
			nodes:   []*berthv1.Node{node("n1", labels("zone", "eu")), node("n2")},
			pending: []*berthv1.Task{task("a1", "web", constraints("node.labels.zone!=eu"))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:    "constraint != on the hostname",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			pending: []*berthv1.Task{task("a1", "web", constraints("node.hostname!=host-n1"))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:    "constraint == on the node id",
			nodes:   []*berthv1.Node{node("n1"), node("n2"), node("n3")},
			pending: []*berthv1.Task{task("a1", "web", constraints("node.id==n3")), task("a2", "web", constraints("node.id==n3"))},
			want:    Plan{Assignments: placed("a1", "n3", "a2", "n3")},
		},
		{
			name:    "unparsable constraint",
			nodes:   []*berthv1.Node{node("n1")},
			pending: []*berthv1.Task{task("a1", "web", constraints("zone=eu")), task("a2", "other")},
			want: Plan{
				Assignments: placed("a2", "n1"),
				Unplaced: []Unplaced{{TaskID: "a1", Reason: `invalid placement: constraint "zone=eu": expected KEY==VALUE or KEY!=VALUE; ` +
					`fix the service's placement constraints and apply again`}},
			},
		},
		{
			name:    "invalid preference",
			nodes:   []*berthv1.Node{node("n1")},
			pending: []*berthv1.Task{task("a1", "web", preferences("spread=node.hostname"))},
			want: Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: `invalid placement: placement preference "spread=node.hostname": ` +
				`expected spread=node.labels.<label>; fix the service's placement preferences and apply again`}}},
		},
		{
			name:  "host port in use by a running task",
			nodes: []*berthv1.Node{node("n1"), node("n2")},
			tasks: []*berthv1.Task{
				task("r1", "proxy", running("n1"), publish(8080, "tcp", "")),
				task("r2", "db", running("n2")), task("r3", "db", running("n2")),
			},
			pending: []*berthv1.Task{task("a1", "web", publish(8080, "", ""))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:  "host port bound by the agent at run time",
			nodes: []*berthv1.Node{node("n1"), node("n2")},
			tasks: []*berthv1.Task{
				task("r1", "proxy", running("n1"), func(t *berthv1.Task) {
					t.Status.Ports = []*berthv1.PortBinding{{Target: 80, Published: 30000, Protocol: "tcp"}}
				}),
				task("r2", "db", running("n2")), task("r3", "db", running("n2")),
			},
			pending: []*berthv1.Task{task("a1", "web", publish(30000, "tcp", ""))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:  "ingress ports take no host port",
			nodes: []*berthv1.Node{node("n1")},
			tasks: []*berthv1.Task{
				task("r1", "proxy", running("n1"), publishMode(8080, "tcp", "", berthv1.PublishMode_PUBLISH_MODE_INGRESS), func(t *berthv1.Task) {
					// An agent that reports the ingress port bound.
					t.Status.Ports = []*berthv1.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp"}}
				}),
				task("r2", "api", running("n1"), publishMode(9090, "", "", berthv1.PublishMode_PUBLISH_MODE_UNSPECIFIED)),
			},
			pending: []*berthv1.Task{
				task("a1", "proxy", publishMode(8080, "tcp", "", berthv1.PublishMode_PUBLISH_MODE_INGRESS)),
				task("a2", "web", publish(8080, "tcp", "")),
				task("a3", "web2", publish(9090, "tcp", "")),
			},
			want: Plan{Assignments: placed("a1", "n1", "a2", "n1", "a3", "n1")},
		},
		{
			name:    "host port conflicts within the batch",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			pending: []*berthv1.Task{task("a1", "web", publish(8080, "tcp", "")), task("a2", "web", publish(8080, "tcp", "")), task("a3", "api", publish(8080, "tcp", ""))},
			want: Plan{
				Assignments: placed("a1", "n1", "a2", "n2"),
				Unplaced:    []Unplaced{{TaskID: "a3", Reason: "no suitable node (host port 8080/tcp in use on 2 nodes)"}},
			},
		},
		{
			name:  "host ports differ by address or protocol",
			nodes: []*berthv1.Node{node("n1")},
			tasks: []*berthv1.Task{task("r1", "proxy", running("n1"), publish(8080, "tcp", "127.0.0.1"))},
			pending: []*berthv1.Task{
				task("a1", "web", publish(8080, "tcp", "127.0.0.2")),
				task("a2", "dns", publish(8080, "udp", "")),
			},
			want: Plan{Assignments: placed("a1", "n1", "a2", "n1")},
		},
		{
			name:  "host port on all addresses conflicts with any address",
			nodes: []*berthv1.Node{node("n1")},
			tasks: []*berthv1.Task{task("r1", "proxy", running("n1"), publish(8080, "tcp", "127.0.0.1"))},
			pending: []*berthv1.Task{
				task("a1", "web", publish(8080, "tcp", "0.0.0.0")),
				task("a2", "api", publish(9090, "tcp", "")),
				task("a3", "web2", publish(9090, "tcp", "127.0.0.1")),
			},
			want: Plan{
				Assignments: placed("a2", "n1"),
				Unplaced: []Unplaced{
					{TaskID: "a1", Reason: "no suitable node (host port 8080/tcp in use on 1 node)"},
					{TaskID: "a3", Reason: "no suitable node (host port 127.0.0.1:9090/tcp in use on 1 node)"},
				},
			},
		},
		{
			name: "nodes not ready, paused or drained are excluded",
			nodes: []*berthv1.Node{
				node("n1", status(down)), node("n2", availability(drain)), node("n3", availability(pause)), node("n4", availability(unset)),
			},
			pending: []*berthv1.Task{task("a1", "web"), task("a2", "web")},
			want:    Plan{Assignments: placed("a1", "n4", "a2", "n4")},
		},
		{
			name: "no ready and active node",
			nodes: []*berthv1.Node{
				node("n1", status(down)), node("n2", availability(drain)), node("n3", availability(pause)),
				node("n4", status(berthv1.NodeStatus_NODE_STATUS_UNREACHABLE)),
			},
			pending: []*berthv1.Task{task("a1", "web")},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "no suitable node (node not ready on 2 nodes, node paused on 1 node, node drained on 1 node)"}}},
		},
		{
			name: "nodes with a failing condition are not ready, by the condition",
			nodes: []*berthv1.Node{
				node("n1", failing("disk")), node("n2", failing("network")), node("n3", failing("disk")),
				node("n4", failing("something-new")), node("n5", status(down)),
			},
			pending: []*berthv1.Task{task("a1", "web")},
			want: Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "no suitable node " +
				"(node not ready (disk) on 2 nodes, node not ready on 1 node, node not ready (network) on 1 node, node not ready (other condition) on 1 node)"}}},
		},
		{
			name:    "a spread service skips the node that cannot run containers",
			nodes:   []*berthv1.Node{node("n1"), node("n2", failing("network"), passing("disk"))},
			pending: []*berthv1.Task{task("a1", "web"), task("a2", "web"), task("a3", "web")},
			want:    Plan{Assignments: placed("a1", "n1", "a2", "n1", "a3", "n1")},
		},
		{
			name:    "passing conditions do not count",
			nodes:   []*berthv1.Node{node("n1", passing("disk")), node("n2", passing("runtime"), passing("network"))},
			pending: []*berthv1.Task{task("a1", "web"), task("a2", "web")},
			want:    Plan{Assignments: placed("a1", "n1", "a2", "n2")},
		},
		{
			name:    "a global task on a node that is not ready waits with the reason",
			nodes:   []*berthv1.Node{node("n1"), node("n2", failing("runtime"))},
			pending: []*berthv1.Task{task("g1", "agent", on("n1")), task("g2", "agent", on("n2"))},
			want: Plan{
				Assignments: placed("g1", "n1"),
				Unplaced:    []Unplaced{{TaskID: "g2", Reason: "node n2 is not suitable (node not ready (runtime) on 1 node)"}},
			},
		},
		{
			name:    "no nodes at all",
			pending: []*berthv1.Task{task("a1", "web")},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "no nodes in the cluster"}}},
		},
		{
			name: "reason counts nodes per filter",
			nodes: []*berthv1.Node{
				node("n1", labels("zone", "us")), node("n2", labels("zone", "us")),
				node("n3", labels("zone", "eu"), capacity(4000, gib)),
				node("n4", labels("zone", "eu"), capacity(4000, gib)),
				node("n5", labels("zone", "eu"), capacity(4000, gib)),
				node("n6", labels("zone", "eu")),
			},
			tasks:   []*berthv1.Task{task("r1", "proxy", running("n6"), publish(8080, "tcp", ""))},
			pending: []*berthv1.Task{task("a1", "web", constraints(zoneEU), reserve(0, 2*gib), publish(8080, "tcp", ""))},
			want: Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "no suitable node (insufficient memory on 3 nodes, " +
				"constraint node.labels.zone==eu on 2 nodes, host port 8080/tcp in use on 1 node)"}}},
		},
		{
			name:  "global task on its preset node",
			nodes: []*berthv1.Node{node("n1"), node("n2"), node("n3", availability(drain)), node("n4", capacity(4000, gib))},
			tasks: []*berthv1.Task{task("r1", "db", running("n2"))},
			pending: []*berthv1.Task{
				task("g2", "agent", on("n2"), reserve(0, 2*gib)),
				task("g3", "agent", on("n3"), reserve(0, 2*gib)),
				task("g4", "agent", on("n4"), reserve(0, 2*gib)),
				task("g9", "agent", on("n9"), reserve(0, 2*gib)),
			},
			want: Plan{
				Assignments: placed("g2", "n2"),
				Unplaced: []Unplaced{
					{TaskID: "g3", Reason: "node n3 is not suitable (node drained on 1 node)"},
					{TaskID: "g4", Reason: "node n4 is not suitable (insufficient memory on 1 node)"},
					{TaskID: "g9", Reason: "node n9 is not in the cluster"},
				},
			},
		},
		{
			name:  "global task listed in the snapshot too does not block itself",
			nodes: []*berthv1.Node{node("n1")},
			tasks: []*berthv1.Task{task("g1", "agent", on("n1"), reserve(0, 8*gib))},
			pending: []*berthv1.Task{
				task("g1", "agent", on("n1"), reserve(0, 8*gib)),
			},
			want: Plan{Assignments: placed("g1", "n1")},
		},
		{
			name: "preset node's resources count for later tasks",
			nodes: []*berthv1.Node{
				node("n1", capacity(4000, 4*gib)), node("n2", capacity(4000, 4*gib)),
			},
			pending: []*berthv1.Task{
				task("g1", "agent", on("n1"), reserve(0, 3*gib)),
				task("a1", "web", reserve(0, 2*gib)),
				task("a2", "web", reserve(0, 2*gib)),
			},
			want: Plan{
				Assignments: placed("g1", "n1", "a1", "n2", "a2", "n2"),
			},
		},
		{
			name: "prefer a node holding the image",
			nodes: []*berthv1.Node{
				node("n1", images("docker.io/library/redis:7")),
				node("n2", images("docker.io/library/busybox:latest", "docker.io/library/redis:latest")),
				node("n3"),
			},
			pending: []*berthv1.Task{task("a1", "cache", image("redis")), task("a2", "cache", image("redis:latest"))},
			want:    Plan{Assignments: placed("a1", "n2", "a2", "n1")},
		},
		{
			name: "image preference outranks total task count",
			nodes: []*berthv1.Node{
				node("n1"), node("n2", images("redis:latest")),
			},
			tasks:   []*berthv1.Task{task("r1", "db", running("n2"))},
			pending: []*berthv1.Task{task("a1", "cache", image("docker.io/library/redis"))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name: "spread over a preference label",
			nodes: []*berthv1.Node{
				node("n1", labels("zone", "eu")), node("n2", labels("zone", "eu")), node("n3", labels("zone", "us")),
			},
			pending: []*berthv1.Task{
				task("a1", "web", preferences(spreadDC)), task("a2", "web", preferences(spreadDC)),
				task("a3", "web", preferences(spreadDC)), task("a4", "web", preferences(spreadDC)),
			},
			want: Plan{Assignments: placed("a1", "n1", "a2", "n3", "a3", "n2", "a4", "n3")},
		},
		{
			name: "nested preferences and nodes without the label",
			nodes: []*berthv1.Node{
				node("n1", labels("zone", "eu", "rack", "r1")), node("n2", labels("zone", "eu", "rack", "r1")),
				node("n3", labels("zone", "eu", "rack", "r2")), node("n4"),
			},
			tasks: []*berthv1.Task{task("r1", "web", running("n1"))},
			pending: []*berthv1.Task{
				task("a1", "web", preferences(spreadDC, "node.labels.rack")),
				task("a2", "web", preferences(spreadDC, "node.labels.rack")),
				task("a3", "web", preferences(spreadDC, "node.labels.rack")),
			},
			// eu holds r1 already: a1 goes to the unlabelled group, a2 to
			// eu's empty rack r2, a3 to the unlabelled group again
			// (eu 2, none 1).
			want: Plan{Assignments: placed("a1", "n4", "a2", "n3", "a3", "n4")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Schedule(Snapshot{Nodes: tt.nodes, Tasks: tt.tasks}, tt.pending)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Schedule() =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestScheduleDeterministic(t *testing.T) {
	snap, pending := generate(50, 200, 500)
	want := Schedule(snap, pending)
	if len(want.Assignments) == 0 {
		t.Fatalf("Schedule() placed nothing; the generated cluster should fit tasks")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		shuffled := Snapshot{Nodes: append([]*berthv1.Node(nil), snap.Nodes...), Tasks: append([]*berthv1.Task(nil), snap.Tasks...)}
		rng.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
		rng.Shuffle(len(shuffled.Tasks), func(i, j int) { shuffled.Tasks[i], shuffled.Tasks[j] = shuffled.Tasks[j], shuffled.Tasks[i] })
		if got := Schedule(shuffled, pending); !reflect.DeepEqual(got, want) {
			t.Fatalf("Schedule() with nodes and tasks in another order gave a different plan")
		}
	}
}

func TestScheduleDoesNotMutateInputs(t *testing.T) {
	snap, pending := generate(20, 100, 300)
	pending = append(pending, task("g1", "agent", on(snap.Nodes[3].GetMeta().GetId())))
	clone := func(ms []proto.Message) []proto.Message {
		out := make([]proto.Message, len(ms))
		for i, m := range ms {
			out[i] = proto.Clone(m)
		}
		return out
	}
	var all []proto.Message
	for _, n := range snap.Nodes {
		all = append(all, n)
	}
	for _, tk := range snap.Tasks {
		all = append(all, tk)
	}
	for _, tk := range pending {
		all = append(all, tk)
	}
	before := clone(all)
	Schedule(snap, pending)
	for i := range all {
		if !proto.Equal(before[i], all[i]) {
			t.Fatalf("Schedule() changed its input %v", all[i])
		}
	}
}

func TestScheduleAvoidsNodesWhereTheServiceKeepsFailing(t *testing.T) {
	failedOn := func(id, svc, node string) *berthv1.Task {
		tk := task(id, svc, running(node))
		tk.Status = &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED}
		return tk
	}
	nodes := []*berthv1.Node{node("n1"), node("n2")}
	// n2 runs more of the service, so spread alone would pick n1.
	tasks := []*berthv1.Task{task("r1", "web", running("n2"))}
	tests := []struct {
		name   string
		failed []*berthv1.Task
		want   string
	}{
		{"no failures: spread decides", nil, "n1"},
		{"one failure is not repeated", []*berthv1.Task{failedOn("f1", "web", "n1")}, "n1"},
		{"repeated failures demote the node", []*berthv1.Task{failedOn("f1", "web", "n1"), failedOn("f2", "web", "n1")}, "n2"},
		{"another service's failures do not count", []*berthv1.Task{failedOn("f1", "db", "n1"), failedOn("f2", "db", "n1")}, "n1"},
	}
	for _, tt := range tests {
		plan := Schedule(Snapshot{Nodes: nodes, Tasks: tasks, Failed: tt.failed}, []*berthv1.Task{task("a1", "web")})
		if len(plan.Assignments) != 1 || plan.Assignments[0].NodeID != tt.want {
			t.Errorf("%s: plan = %+v, want a1 on %s", tt.name, plan, tt.want)
		}
	}
}
