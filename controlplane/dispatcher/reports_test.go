package dispatcher

import (
	"context"
	"log/slog"
	"slices"
	"testing"

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
