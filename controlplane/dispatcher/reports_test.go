package dispatcher

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
)

// newStoreAndCache returns a store on an embedded etcd and a cache
// following it, all stopped when the test ends.
func newStoreAndCache(t *testing.T) (*store.Store, *store.Cache) {
	s := storetest.New(t)
	return s, storetest.NewCache(t, s)
}

func statuses(states ...berthv1.TaskState) []*berthv1.TaskStatus {
	out := make([]*berthv1.TaskStatus, len(states))
	for i, s := range states {
		out[i] = &berthv1.TaskStatus{State: s}
	}
	return out
}

func TestApplyReports(t *testing.T) {
	ctx := context.Background()
	s, c := newStoreAndCache(t)
	d := New(Config{Store: s, Cache: c, Log: slog.New(slog.DiscardHandler)})

	tk := task("t1", "n1", berthv1.TaskState_TASK_STATE_ASSIGNED, 1, berthv1.TaskState_TASK_STATE_RUNNING)
	key := store.TaskKey(tk.Namespace, tk.App, tk.Service, "t1")
	var txn store.Txn
	txn.Create(key, tk)
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name    string
		batch   map[string]*pendingReports
		state   berthv1.TaskState
		history []berthv1.TaskState // states recorded since assigned
	}{
		{"forward, every step kept", map[string]*pendingReports{"t1": {nodeID: "n1", statuses: statuses(
			berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING,
			berthv1.TaskState_TASK_STATE_STARTING, berthv1.TaskState_TASK_STATE_RUNNING)}},
			berthv1.TaskState_TASK_STATE_RUNNING,
			[]berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING, berthv1.TaskState_TASK_STATE_STARTING, berthv1.TaskState_TASK_STATE_RUNNING}},
		{"backwards is ignored", map[string]*pendingReports{"t1": {nodeID: "n1", statuses: statuses(berthv1.TaskState_TASK_STATE_STARTING)}},
			berthv1.TaskState_TASK_STATE_RUNNING,
			[]berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING, berthv1.TaskState_TASK_STATE_STARTING, berthv1.TaskState_TASK_STATE_RUNNING}},
		{"another node's report is ignored", map[string]*pendingReports{"t1": {nodeID: "n2", statuses: statuses(berthv1.TaskState_TASK_STATE_FAILED)}},
			berthv1.TaskState_TASK_STATE_RUNNING,
			[]berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING, berthv1.TaskState_TASK_STATE_STARTING, berthv1.TaskState_TASK_STATE_RUNNING}},
		{"unknown task is ignored", map[string]*pendingReports{"nope": {nodeID: "n1", statuses: statuses(berthv1.TaskState_TASK_STATE_FAILED)}},
			berthv1.TaskState_TASK_STATE_RUNNING,
			[]berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING, berthv1.TaskState_TASK_STATE_STARTING, berthv1.TaskState_TASK_STATE_RUNNING}},
		{"failure", map[string]*pendingReports{"t1": {nodeID: "n1", statuses: []*berthv1.TaskStatus{{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 3, Err: "task: non-zero exit (3)"}}}},
			berthv1.TaskState_TASK_STATE_FAILED,
			[]berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING, berthv1.TaskState_TASK_STATE_STARTING, berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_FAILED}},
		{"nothing after a final state", map[string]*pendingReports{"t1": {nodeID: "n1", statuses: statuses(berthv1.TaskState_TASK_STATE_RUNNING)}},
			berthv1.TaskState_TASK_STATE_FAILED,
			[]berthv1.TaskState{berthv1.TaskState_TASK_STATE_ACCEPTED, berthv1.TaskState_TASK_STATE_PREPARING, berthv1.TaskState_TASK_STATE_STARTING, berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_FAILED}},
	}
	for _, st := range steps {
		if err := d.applyReports(ctx, st.batch); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := &berthv1.Task{}
		if err := s.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		// Later steps read the task from the cache: let it catch up.
		if err := c.WaitRevision(ctx, got.GetMeta().GetVersion()); err != nil {
			t.Fatal(err)
		}
		var history []berthv1.TaskState
		for _, h := range got.History {
			history = append(history, h.State)
		}
		if got.GetStatus().GetState() != st.state || !slices.Equal(history, st.history) {
			t.Errorf("%s: state %v history %v, want %v history %v", st.name, got.GetStatus().GetState(), history, st.state, st.history)
		}
		if got.GetStatus().GetTimestamp() == nil {
			t.Errorf("%s: the status has no timestamp", st.name)
		}
	}
	got := &berthv1.Task{}
	if err := s.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if got.GetStatus().GetExitCode() != 3 || got.GetStatus().GetErr() != "task: non-zero exit (3)" {
		t.Fatalf("failure details lost: %v", got.GetStatus())
	}
}

func TestStatusEvents(t *testing.T) {
	at := func(state berthv1.TaskState, health berthv1.Health, code int32, err string) *berthv1.Task {
		tk := task("t1", "n1", state, 1, berthv1.TaskState_TASK_STATE_RUNNING)
		tk.Slot = 2
		tk.Status.Health, tk.Status.ExitCode, tk.Status.Err = health, code, err
		return tk
	}
	const (
		running  = berthv1.TaskState_TASK_STATE_RUNNING
		failed   = berthv1.TaskState_TASK_STATE_FAILED
		rejected = berthv1.TaskState_TASK_STATE_REJECTED
		none     = berthv1.Health_HEALTH_UNSPECIFIED
		starting = berthv1.Health_HEALTH_STARTING
		healthy  = berthv1.Health_HEALTH_HEALTHY
		sick     = berthv1.Health_HEALTH_UNHEALTHY
	)
	tests := []struct {
		name     string
		old, new *berthv1.Task
		want     []string // action: message
		exitCode string
	}{
		{"killed", at(running, none, 0, ""), at(failed, none, 137, "task: non-zero exit (137)"),
			[]string{"fail: task web.2 failed on node alpha: exit code 137"}, "137"},
		{"error without exit code", at(running, none, 0, ""), at(failed, none, 0, "lost track of the container: gone"),
			[]string{"fail: task web.2 failed on node alpha: lost track of the container: gone"}, ""},
		{"rejected", at(berthv1.TaskState_TASK_STATE_PREPARING, none, 0, ""), at(rejected, none, 0, "pulling image: not found"),
			[]string{"reject: task web.2 was rejected by node alpha: pulling image: not found"}, ""},
		{"starting is no news", at(running, none, 0, ""), at(running, starting, 0, ""), nil, ""},
		{"healthy", at(running, starting, 0, ""), at(running, healthy, 0, ""),
			[]string{"health: task web.2 on node alpha is healthy"}, ""},
		{"unhealthy and failed", at(running, healthy, 0, ""), at(failed, sick, 0, "unhealthy: exit status 1"),
			[]string{"health: task web.2 on node alpha is unhealthy: exit status 1", "fail: task web.2 failed on node alpha: unhealthy: exit status 1"}, ""},
		{"unchanged", at(running, healthy, 0, ""), at(running, healthy, 0, ""), nil, ""},
		{"already failed", at(failed, none, 1, ""), at(failed, none, 1, ""), nil, ""},
	}
	for _, tt := range tests {
		evs := statusEvents(tt.old, tt.new, "alpha")
		var got []string
		for _, ev := range evs {
			got = append(got, ev.Action+": "+ev.Message)
			if ev.Kind != store.EventKindTask || ev.ObjectId != "t1" || ev.Attributes[store.AttrService] != "web" ||
				ev.Attributes[store.AttrSlot] != "2" || ev.Attributes[store.AttrNode] != "n1" || ev.Attributes[store.AttrNodeName] != "alpha" {
				t.Errorf("%s: event %v lacks the task's identity", tt.name, ev)
			}
			if ev.Action == "fail" && ev.Attributes[store.AttrExitCode] != tt.exitCode {
				t.Errorf("%s: exit code attribute %q, want %q", tt.name, ev.Attributes[store.AttrExitCode], tt.exitCode)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestApplyReportsRecordsEvents(t *testing.T) {
	ctx := context.Background()
	s, c := newStoreAndCache(t)
	d := New(Config{Store: s, Cache: c, Log: slog.New(slog.DiscardHandler)})
	tk := task("t1", "n1", berthv1.TaskState_TASK_STATE_RUNNING, 1, berthv1.TaskState_TASK_STATE_RUNNING)
	tk.Slot = 1
	node := &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Name: "alpha"}
	var txn store.Txn
	txn.Create(store.TaskKey(tk.Namespace, tk.App, tk.Service, "t1"), tk)
	txn.Create(store.NodeKey("n1"), node)
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	failure := []*berthv1.TaskStatus{{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 137, Err: "task: non-zero exit (137)"}}
	// The same failure reported twice (an agent reconnecting) is one event.
	for range 2 {
		if err := d.applyReports(ctx, map[string]*pendingReports{"t1": {nodeID: "n1", statuses: failure}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FlushEvents(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, time.Time{}, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Message != "task web.1 failed on node alpha: exit code 137" {
		t.Fatalf("events %v, want the one failure", evs)
	}
}
