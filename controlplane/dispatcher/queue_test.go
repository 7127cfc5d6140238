package dispatcher

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewSubnetPool(t *testing.T) {
	tests := []struct {
		cidr    string
		bits    int
		wantErr string
	}{
		{"10.88.0.0/16", 24, ""},
		{"10.88.7.9/16", 24, ""}, // host bits are masked off
		{"10.88.0.0/24", 24, "larger than /24"},
		{"10.88.0.0/16", 31, "larger than /31"},
		{"fd00::/64", 80, "IPv4"},
		{"10.88.0.0", 24, "container address range"},
	}
	for _, tt := range tests {
		_, err := NewSubnetPool(tt.cidr, tt.bits)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("NewSubnetPool(%q, %d): %v", tt.cidr, tt.bits, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("NewSubnetPool(%q, %d) = %v, want an error with %q", tt.cidr, tt.bits, err, tt.wantErr)
		}
	}
}

func TestSubnetPoolNext(t *testing.T) {
	tests := []struct {
		name string
		cidr string
		bits int
		used []string
		want string // "" for an exhausted pool
	}{
		{"first", "10.88.0.0/16", 24, nil, "10.88.0.0/24"},
		{"masked range", "10.88.200.1/16", 24, nil, "10.88.0.0/24"},
		{"skips used", "10.88.0.0/16", 24, []string{"10.88.0.0/24", "10.88.1.0/24"}, "10.88.2.0/24"},
		{"fills a hole", "10.88.0.0/16", 24, []string{"10.88.0.0/24", "10.88.2.0/24"}, "10.88.1.0/24"},
		{"other ranges do not count", "10.88.0.0/16", 24, []string{"10.99.0.0/24", ""}, "10.88.0.0/24"},
		{"crosses an octet", "10.0.0.0/8", 16, []string{"10.0.0.0/16"}, "10.1.0.0/16"},
		{"last one", "10.88.0.0/23", 24, []string{"10.88.0.0/24"}, "10.88.1.0/24"},
		{"exhausted", "10.88.0.0/23", 24, []string{"10.88.0.0/24", "10.88.1.0/24"}, ""},
	}
	for _, tt := range tests {
		p, err := NewSubnetPool(tt.cidr, tt.bits)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		used := map[string]bool{}
		for _, u := range tt.used {
			used[u] = true
		}
		got, err := p.next(used)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: got %s, want an error for an exhausted pool", tt.name, got)
		case tt.want == "" && !strings.Contains(err.Error(), "in use"):
			t.Errorf("%s: error %q does not say the pool is used up", tt.name, err)
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("%s: got %q, %v; want %s", tt.name, got, err, tt.want)
		}
	}
}

// TestSubnetPoolOffersDiffer gives nodes registering at once different
// subnets, before either is stored.
func TestSubnetPoolOffersDiffer(t *testing.T) {
	p, err := NewSubnetPool("10.88.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.next(nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.next(nil)
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatalf("two registrations in flight were both offered %s", first)
	}
	// Once stored, the first is simply used; the pool forgets its offer.
	third, err := p.next(map[string]bool{first: true})
	if err != nil || third == first || third == second {
		t.Fatalf("third offer %s (%v) repeats %s or %s", third, err, first, second)
	}
	if _, held := p.offered[first]; held {
		t.Fatalf("a stored subnet is still held as an offer")
	}
}

func report(id string, state berthv1.TaskState) *berthv1.TaskStatusReport {
	return &berthv1.TaskStatusReport{TaskId: id, Status: &berthv1.TaskStatus{State: state}}
}

func states(p *pendingReports) []berthv1.TaskState {
	var out []berthv1.TaskState
	for _, st := range p.statuses {
		out = append(out, st.State)
	}
	return out
}

func TestReportQueueKeepsOrderAndNode(t *testing.T) {
	q := newReportQueue()
	select {
	case <-q.ready:
		t.Fatal("an empty queue is ready")
	default:
	}
	q.add("n1", nil)
	q.add("n1", []*berthv1.TaskStatusReport{
		report("t1", berthv1.TaskState_TASK_STATE_ACCEPTED),
		report("t2", berthv1.TaskState_TASK_STATE_ACCEPTED),
		{TaskId: "t3"}, // no status: nothing to write
	})
	q.add("n1", []*berthv1.TaskStatusReport{report("t1", berthv1.TaskState_TASK_STATE_PREPARING)})
	q.add("n2", []*berthv1.TaskStatusReport{report("t4", berthv1.TaskState_TASK_STATE_RUNNING)})
	q.add("n1", []*berthv1.TaskStatusReport{report("t1", berthv1.TaskState_TASK_STATE_STARTING)})
	select {
	case <-q.ready:
	default:
		t.Fatal("the queue did not signal its writer")
	}

	batch := q.take()
	want := map[string]struct {
		node   string
		states []berthv1.TaskState
	}{
		"t1": {"n1", []berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING, berthv1.TaskState_TASK_STATE_STARTING}},
		"t2": {"n1", []berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED}},
		"t4": {"n2", []berthv1.TaskState{berthv1.TaskState_TASK_STATE_RUNNING}},
	}
	if len(batch) != len(want) {
		t.Fatalf("batch holds %d tasks, want %d", len(batch), len(want))
	}
	for id, w := range want {
		p := batch[id]
		if p == nil {
			t.Errorf("%s missing from the batch", id)
			continue
		}
		if p.nodeID != w.node || !slices.Equal(states(p), w.states) {
			t.Errorf("%s: node %s states %v, want node %s states %v", id, p.nodeID, states(p), w.node, w.states)
		}
	}
	if again := q.take(); len(again) != 0 {
		t.Fatalf("a second take returned %d tasks, want none", len(again))
	}
}

func task(id, node string, state berthv1.TaskState, version uint64, desired berthv1.TaskState) *berthv1.Task {
	return &berthv1.Task{
		Meta:      &berthv1.Meta{Id: id},
		Namespace: "default", App: "app", Service: "web", ServiceId: "s1",
		NodeId: node, SpecVersion: version, DesiredState: desired,
		Status: &berthv1.TaskStatus{State: state},
	}
}

// ids lists an assignment's tasks and removals, sorted.
func ids(a *berthv1.Assignments) (tasks, removed []string) {
	for _, t := range a.Tasks {
		tasks = append(tasks, t.GetMeta().GetId())
	}
	removed = append(removed, a.Removed...)
	sort.Strings(tasks)
	sort.Strings(removed)
	return tasks, removed
}

func TestSessionQueueCoalesces(t *testing.T) {
	run := berthv1.TaskState_TASK_STATE_RUNNING
	assigned := berthv1.TaskState_TASK_STATE_ASSIGNED
	tests := []struct {
		name        string
		ops         func(s *session)
		full        bool
		tasks       []string
		removed     []string
		wantVersion uint64 // of the first task, when non-zero
	}{
		{"nothing queued", func(s *session) {}, false, nil, nil, 0},
		{"changes", func(s *session) {
			s.queue(task("a", "n1", assigned, 1, run), "")
			s.queue(task("b", "n1", assigned, 1, run), "")
			s.queue(nil, "c")
		}, false, []string{"a", "b"}, []string{"c"}, 0},
		{"the last version of a task wins", func(s *session) {
			s.queue(task("a", "n1", assigned, 1, run), "")
			s.queue(task("a", "n1", assigned, 2, run), "")
		}, false, []string{"a"}, nil, 2},
		{"removal cancels a queued task", func(s *session) {
			s.queue(task("a", "n1", assigned, 1, run), "")
			s.queue(nil, "a")
		}, false, nil, []string{"a"}, 0},
		{"a task cancels a queued removal", func(s *session) {
			s.queue(nil, "a")
			s.queue(task("a", "n1", assigned, 3, run), "")
		}, false, []string{"a"}, nil, 3},
		{"full replaces what was queued", func(s *session) {
			s.queue(task("a", "n1", assigned, 1, run), "")
			s.queue(nil, "b")
			s.queueFull([]*berthv1.Task{task("c", "n1", assigned, 1, run), task("d", "n1", assigned, 1, run)})
		}, true, []string{"c", "d"}, nil, 0},
		{"changes after full stay full", func(s *session) {
			s.queueFull([]*berthv1.Task{task("c", "n1", assigned, 1, run)})
			s.queue(task("e", "n1", assigned, 1, run), "")
		}, true, []string{"c", "e"}, nil, 0},
		{"an empty full set still goes out", func(s *session) {
			s.queueFull(nil)
		}, true, nil, nil, 0},
	}
	for _, tt := range tests {
		s := newSession("n1", context.Background(), func() {})
		tt.ops(s)
		a := s.take()
		if a == nil {
			if tt.full || tt.tasks != nil || tt.removed != nil {
				t.Errorf("%s: nothing to send, want full=%v tasks %v removed %v", tt.name, tt.full, tt.tasks, tt.removed)
			}
			continue
		}
		tasks, removed := ids(a)
		if a.Full != tt.full || !slices.Equal(tasks, tt.tasks) || !slices.Equal(removed, tt.removed) {
			t.Errorf("%s: full=%v tasks %v removed %v, want full=%v tasks %v removed %v", tt.name, a.Full, tasks, removed, tt.full, tt.tasks, tt.removed)
		}
		if tt.wantVersion != 0 && a.Tasks[0].SpecVersion != tt.wantVersion {
			t.Errorf("%s: sent version %d, want %d", tt.name, a.Tasks[0].SpecVersion, tt.wantVersion)
		}
		if next := s.take(); next != nil {
			t.Errorf("%s: a second take sent %v, want nothing", tt.name, next)
		}
	}
}

// TestSessionsShareCachedTasks sends the cached task itself, not a copy:
// sessions marshal it at once from their own goroutines, which only read
// it (the race detector watches).
func TestSessionsShareCachedTasks(t *testing.T) {
	cached := task("a", "n1", berthv1.TaskState_TASK_STATE_ASSIGNED, 1, berthv1.TaskState_TASK_STATE_RUNNING)
	cached.Spec = &berthv1.ServiceSpec{Image: "web:1", Env: []string{"A=1"}, Labels: map[string]string{"k": "v"}}
	var out [2][]byte
	var wg sync.WaitGroup
	for i := range out {
		s := newSession("n1", context.Background(), func() {})
		s.queue(cached, "")
		a := s.take()
		if len(a.Tasks) != 1 || a.Tasks[0] != cached {
			t.Fatalf("the assignment does not carry the cached task")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := proto.Marshal(a)
			if err != nil {
				t.Error(err)
			}
			out[i] = b
		}()
	}
	wg.Wait()
	if !bytes.Equal(out[0], out[1]) {
		t.Fatalf("two sessions marshalled one task differently")
	}
}

func TestRouteSendsWhatTheAgentMustActOn(t *testing.T) {
	run := berthv1.TaskState_TASK_STATE_RUNNING
	stop := berthv1.TaskState_TASK_STATE_SHUTDOWN
	pending := berthv1.TaskState_TASK_STATE_PENDING
	assigned := berthv1.TaskState_TASK_STATE_ASSIGNED
	running := berthv1.TaskState_TASK_STATE_RUNNING
	put := func(old, cur *berthv1.Task) store.Event {
		ev := store.Event{Kind: store.KindTask, Action: store.ActionPut, Object: cur}
		if old != nil {
			ev.Old = old
		}
		return ev
	}
	tests := []struct {
		name    string
		ev      store.Event
		n1, n2  []string // task ids sent to each node
		removed []string // removals sent to n1
	}{
		{"pending task: no node yet", put(nil, task("a", "", pending, 1, run)), nil, nil, nil},
		{"newly assigned", put(task("a", "", pending, 1, run), task("a", "n1", assigned, 1, run)), []string{"a"}, nil, nil},
		{"status report echo", put(task("a", "n1", assigned, 1, run), task("a", "n1", running, 1, run)), nil, nil, nil},
		{"desired shutdown", put(task("a", "n1", running, 1, run), task("a", "n1", running, 1, stop)), []string{"a"}, nil, nil},
		{"deleted", store.Event{Kind: store.KindTask, Action: store.ActionDelete, Object: task("a", "n1", stop, 1, stop), Old: task("a", "n1", stop, 1, stop)}, nil, nil, []string{"a"}},
		{"moved to another node", put(task("a", "n1", assigned, 1, run), task("a", "n2", assigned, 1, run)), nil, []string{"a"}, []string{"a"}},
	}
	for _, tt := range tests {
		d := &Dispatcher{sessions: map[string]*session{"n1": newSession("n1", context.Background(), func() {}), "n2": newSession("n2", context.Background(), func() {})}}
		d.route(tt.ev)
		for node, want := range map[string][]string{"n1": tt.n1, "n2": tt.n2} {
			var got, removed []string
			if a := d.sessions[node].take(); a != nil {
				got, removed = ids(a)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s was sent %v, want %v", tt.name, node, got, want)
			}
			if node == "n1" && !slices.Equal(removed, tt.removed) {
				t.Errorf("%s: n1 was told to remove %v, want %v", tt.name, removed, tt.removed)
			}
		}
	}
}

func TestReportQueueRequeueKeepsOrder(t *testing.T) {
	q := newReportQueue()
	st := func(s berthv1.TaskState) *berthv1.TaskStatus { return &berthv1.TaskStatus{State: s} }
	q.add("n1", []*berthv1.TaskStatusReport{{TaskId: "t1", Status: st(berthv1.TaskState_TASK_STATE_STARTING)}})
	failed := q.take()
	q.add("n1", []*berthv1.TaskStatusReport{{TaskId: "t1", Status: st(berthv1.TaskState_TASK_STATE_RUNNING)}})
	q.requeue(failed)
	got := q.take()["t1"]
	if got == nil || len(got.statuses) != 2 ||
		got.statuses[0].State != berthv1.TaskState_TASK_STATE_STARTING || got.statuses[1].State != berthv1.TaskState_TASK_STATE_RUNNING {
		t.Fatalf("after requeue t1 has %v, want starting then running", got)
	}
}
