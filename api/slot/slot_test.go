package slot

import (
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	pending  = berthv1.TaskState_TASK_STATE_PENDING
	running  = berthv1.TaskState_TASK_STATE_RUNNING
	complete = berthv1.TaskState_TASK_STATE_COMPLETE
	failed   = berthv1.TaskState_TASK_STATE_FAILED
	shutdown = berthv1.TaskState_TASK_STATE_SHUTDOWN
)

var epoch = time.Unix(1000, 0)

// tk is a task for the cases: age orders tasks (older is smaller), stop
// makes its desired state shutdown.
type tk struct {
	id      string
	slot    uint64
	node    string
	version uint64
	state   berthv1.TaskState
	health  berthv1.Health
	exit    int32
	stop    bool
	age     time.Duration
}

func (d tk) task() *berthv1.Task {
	desired := running
	if d.stop {
		desired = shutdown
	}
	return &berthv1.Task{
		Meta:         &berthv1.Meta{Id: d.id, CreatedAt: timestamppb.New(epoch.Add(-d.age))},
		Slot:         d.slot,
		NodeId:       d.node,
		SpecVersion:  max(d.version, 1),
		DesiredState: desired,
		Status:       &berthv1.TaskStatus{State: d.state, Health: d.health, ExitCode: d.exit},
	}
}

func tasks(ds ...tk) []*berthv1.Task {
	var out []*berthv1.Task
	for _, d := range ds {
		out = append(out, d.task())
	}
	return out
}

func service(replicas uint64, global bool, policy berthv1.RestartCondition) *berthv1.Service {
	svc := &berthv1.Service{Name: "web", SpecVersion: 1, Spec: &berthv1.ServiceSpec{
		Replicas: replicas, RestartPolicy: &berthv1.RestartPolicy{Condition: policy},
	}}
	if global {
		svc.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	}
	return svc
}

func TestWanted(t *testing.T) {
	tests := []struct {
		name   string
		svc    *berthv1.Service
		tasks  []*berthv1.Task
		nodes  []string
		want   []string // keys
		counts []int    // tasks per wanted slot
	}{
		{"replicated: slots 1 to replicas, surplus left out", service(2, false, 0),
			tasks(tk{id: "a", slot: 1}, tk{id: "b", slot: 1, age: time.Second}, tk{id: "c", slot: 3}), nil,
			[]string{"1", "2"}, []int{2, 0}},
		{"replicated: scaled to zero", service(0, false, 0), tasks(tk{id: "a", slot: 1}), nil, []string{}, []int{}},
		{"global: the nodes given, sorted", service(0, true, 0),
			tasks(tk{id: "a", node: "n2"}), []string{"n3", "n2"},
			[]string{"node:n2", "node:n3"}, []int{1, 0}},
		{"global, observed: where tasks are meant to run", service(0, true, 0),
			tasks(tk{id: "a", node: "n2"}, tk{id: "b", node: "n1", state: complete, stop: true}, tk{id: "c", node: "n1", age: time.Second}, tk{id: "d"}), nil,
			[]string{"node:n1", "node:n2"}, []int{2, 1}},
		{"global, observed: nothing meant to run", service(0, true, 0),
			tasks(tk{id: "a", node: "n1", stop: true}), nil, []string{}, []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Wanted(tt.svc, Group(tt.tasks), tt.nodes)
			keys, counts := []string{}, []int{}
			for _, s := range got {
				keys = append(keys, s.Key)
				counts = append(counts, len(s.Tasks))
			}
			if !slices.Equal(keys, tt.want) || !slices.Equal(counts, tt.counts) {
				t.Errorf("Wanted() = %v with %v tasks, want %v with %v", keys, counts, tt.want, tt.counts)
			}
		})
	}
}

func TestGroupSortsNewestFirst(t *testing.T) {
	g := Group(tasks(tk{id: "old", slot: 1, age: time.Minute}, tk{id: "b", slot: 1}, tk{id: "a", slot: 1}, tk{id: "x", node: "n1"}))
	var ids []string
	for _, t := range g["1"] {
		ids = append(ids, t.GetMeta().GetId())
	}
	if !slices.Equal(ids, []string{"b", "a", "old"}) || len(g["node:n1"]) != 1 {
		t.Fatalf("Group() = %v, want slot 1 as [b a old] and node:n1 with one task", ids)
	}
}

func TestJudge(t *testing.T) {
	const (
		any     = berthv1.RestartCondition_RESTART_CONDITION_ANY
		none    = berthv1.RestartCondition_RESTART_CONDITION_NONE
		onFail  = berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE
		healthy = berthv1.Health_HEALTH_HEALTHY
		start   = berthv1.Health_HEALTH_STARTING
	)
	withCheck := service(1, false, any)
	withCheck.Spec.Healthcheck = &berthv1.HealthCheck{Test: []string{"CMD", "true"}}
	tests := []struct {
		name    string
		svc     *berthv1.Service
		cond    Condition
		tasks   []tk
		gaveUp  bool
		phase   Phase
		wait    Wait
		subject string // the verdict's task
	}{
		{"no task", service(1, false, any), Converged, nil, false, Waiting, NoTask, ""},
		{"only another version", service(1, false, any), Converged,
			[]tk{{id: "old", slot: 1, version: 1, state: running}}, false, Waiting, OtherVersion, "old"},
		{"running", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: running}}, false, Met, 0, "a"},
		{"running, no health result yet", withCheck, Converged, []tk{{id: "a", slot: 1, state: running}}, false, Waiting, NotHealthy, "a"},
		{"running and healthy", withCheck, Converged, []tk{{id: "a", slot: 1, state: running, health: healthy}}, false, Met, 0, "a"},
		{"image health starting", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: running, health: start}}, false, Waiting, NotHealthy, "a"},
		{"pending", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: pending}}, false, Waiting, Starting, "a"},
		{"stopping", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: running, stop: true}}, false, Waiting, Stopping, "a"},
		{"stopped on purpose", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: shutdown, stop: true}}, false, Waiting, Replacing, "a"},
		{"failed, restarting", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: failed, exit: 1}}, false, Waiting, Restarting, "a"},
		{"failed, given up", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: failed, exit: 1}}, true, Failed, 0, "a"},
		{"failed, policy none", service(1, false, none), Converged, []tk{{id: "a", slot: 1, state: failed, exit: 1}}, false, Failed, 0, "a"},
		{"one-shot done", service(1, false, onFail), Converged, []tk{{id: "a", slot: 1, state: complete}}, false, Met, 0, "a"},
		{"completed, policy any restarts it", service(1, false, any), Converged, []tk{{id: "a", slot: 1, state: complete}}, false, Waiting, Restarting, "a"},
		{"the newest decides", service(1, false, any), Converged,
			[]tk{{id: "new", slot: 1, state: pending}, {id: "old", slot: 1, state: running, age: time.Minute}}, false, Waiting, Starting, "new"},

		{"started: running", service(1, false, any), Started, []tk{{id: "a", slot: 1, state: running}}, false, Met, 0, "a"},
		{"started: completed", service(1, false, any), Started, []tk{{id: "a", slot: 1, state: complete}}, false, Met, 0, "a"},
		{"started: an older task of the version runs", service(1, false, any), Started,
			[]tk{{id: "new", slot: 1, state: pending}, {id: "old", slot: 1, state: running, age: time.Minute}}, false, Met, 0, "old"},
		{"started: pending", service(1, false, any), Started, []tk{{id: "a", slot: 1, state: pending}}, false, Waiting, Starting, "a"},
		{"started: failed for good", service(1, false, none), Started, []tk{{id: "a", slot: 1, state: failed, exit: 1}}, false, Failed, 0, "a"},

		{"healthy: running without a check", service(1, false, any), Healthy, []tk{{id: "a", slot: 1, state: running}}, false, Waiting, NotHealthy, "a"},
		{"healthy: healthy", service(1, false, any), Healthy, []tk{{id: "a", slot: 1, state: running, health: healthy}}, false, Met, 0, "a"},

		{"completed: exit 0", service(1, false, onFail), CompletedSuccessfully, []tk{{id: "a", slot: 1, state: complete}}, false, Met, 0, "a"},
		{"completed: exit 0, restarted by its policy", service(1, false, any), CompletedSuccessfully,
			[]tk{{id: "new", slot: 1, state: running}, {id: "old", slot: 1, state: complete, age: time.Minute}}, false, Met, 0, "old"},
		{"completed: failed, retry under way", service(1, false, any), CompletedSuccessfully,
			[]tk{{id: "new", slot: 1, state: pending}, {id: "old", slot: 1, state: failed, exit: 1, age: time.Minute}}, false, Waiting, Starting, "new"},
		{"completed: failed after an earlier success", service(1, false, none), CompletedSuccessfully,
			[]tk{{id: "new", slot: 1, state: failed, exit: 2}, {id: "old", slot: 1, state: complete, age: time.Minute}}, false, Failed, 0, "new"},
		{"completed: failed, restart due", service(1, false, any), CompletedSuccessfully,
			[]tk{{id: "a", slot: 1, state: failed, exit: 1}}, false, Waiting, Restarting, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := make([]*berthv1.Task, 0, len(tt.tasks))
			for i, d := range tt.tasks {
				if tt.name == "only another version" && i == 0 {
					tt.svc.SpecVersion = 2
				}
				ts = append(ts, d.task())
			}
			s := Wanted(tt.svc, Group(ts), nil)[0]
			got := Judge(tt.svc, s, tt.cond, func(*berthv1.Task) bool { return tt.gaveUp })
			subject := ""
			if got.Task != nil {
				subject = got.Task.GetMeta().GetId()
			}
			if got.Phase != tt.phase || (got.Phase == Waiting && got.Wait != tt.wait) || subject != tt.subject {
				t.Errorf("Judge() = phase %d wait %d task %q, want phase %d wait %d task %q", got.Phase, got.Wait, subject, tt.phase, tt.wait, tt.subject)
			}
		})
	}
}

func TestOfAgreesWithWanted(t *testing.T) {
	replicated, global := service(3, false, 0), service(0, true, 0)
	groups := Group(tasks(tk{id: "a", slot: 2}, tk{id: "b", node: "n1"}))
	tests := []struct {
		name  string
		svc   *berthv1.Service
		key   string
		nodes []string
		want  bool
	}{
		{"replicated, wanted", replicated, "2", nil, true},
		{"replicated, past replicas", replicated, "4", nil, false},
		{"replicated, zero", replicated, "0", nil, false},
		{"replicated, not a number", replicated, "node:n1", nil, false},
		{"replicated, leading zero", replicated, "02", nil, false},
		{"global, eligible", global, "node:n1", []string{"n1", "n2"}, true},
		{"global, not eligible", global, "node:n3", []string{"n1", "n2"}, false},
		{"global, a number", global, "1", []string{"n1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := Of(tt.svc, groups, tt.key, tt.nodes)
			if ok != tt.want {
				t.Fatalf("Of(%q) wanted = %v, want %v", tt.key, ok, tt.want)
			}
			listed := slices.ContainsFunc(Wanted(tt.svc, groups, tt.nodes), func(w Slot) bool {
				return w.Key == s.Key && w.Number == s.Number && w.Node == s.Node && len(w.Tasks) == len(s.Tasks)
			})
			if ok != listed {
				t.Errorf("Of(%q) = %+v, %v; Wanted lists it: %v", tt.key, s, ok, listed)
			}
		})
	}
}
