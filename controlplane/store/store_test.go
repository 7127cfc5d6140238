package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/protobuf/proto"
)

func newStore(t *testing.T) *store.Store { return storetest.New(t) }

func task(id, svc, node string) *berthv1.Task {
	return &berthv1.Task{
		Meta:      &berthv1.Meta{Id: id},
		Namespace: "default", App: "app", Service: "web", ServiceId: svc, NodeId: node,
		Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_NEW},
	}
}

func taskKey(t *berthv1.Task) string {
	return store.TaskKey(t.Namespace, t.App, t.Service, t.GetMeta().GetId())
}

func TestTxnGuards(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	tk := task("t1", "s1", "")
	var txn store.Txn
	txn.Create(taskKey(tk), tk)
	if _, err := s.Commit(ctx, &txn); err != nil {
		t.Fatalf("create: %v", err)
	}
	var again store.Txn
	again.Create(taskKey(tk), tk)
	if _, err := s.Commit(ctx, &again); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: got %v, want ErrConflict", err)
	}
	got := &berthv1.Task{}
	if err := s.Get(ctx, taskKey(tk), got); err != nil {
		t.Fatal(err)
	}
	if got.GetMeta().GetVersion() == 0 {
		t.Fatalf("version not stamped on read")
	}
	stale := proto.Clone(got).(*berthv1.Task)
	got.NodeId = "n1"
	var upd store.Txn
	upd.Update(taskKey(got), got)
	if _, err := s.Commit(ctx, &upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	stale.NodeId = "n2"
	var lost store.Txn
	lost.Update(taskKey(stale), stale)
	if _, err := s.Commit(ctx, &lost); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: got %v, want ErrConflict", err)
	}
	if err := s.Get(ctx, "/berth/tasks/none", &berthv1.Task{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing key: got %v, want ErrNotFound", err)
	}
}

func TestUpdateBatchesAndRetries(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const n = 300 // more than one transaction's worth
	var tasks []*berthv1.Task
	for i := 0; i < n; i += store.MaxTxnOps {
		var txn store.Txn
		for j := i; j < min(i+store.MaxTxnOps, n); j++ {
			tk := task(store.NewID(), "s1", "")
			txn.Create(taskKey(tk), tk)
		}
		if _, err := s.Commit(ctx, &txn); err != nil {
			t.Fatal(err)
		}
	}
	tasks, _, err := store.List(ctx, s, store.TasksPrefix, func() *berthv1.Task { return &berthv1.Task{} })
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != n {
		t.Fatalf("listed %d tasks, want %d", len(tasks), n)
	}
	// Someone else writes one task after we read it: the batch must retry.
	other := proto.Clone(tasks[5]).(*berthv1.Task)
	other.DesiredState = berthv1.TaskState_TASK_STATE_SHUTDOWN
	var txn store.Txn
	txn.Update(taskKey(other), other)
	if _, err := s.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	changes := make([]store.Change, len(tasks))
	for i, tk := range tasks {
		changes[i] = store.Change{Key: taskKey(tk), Current: tk, Apply: func(o store.Object) bool {
			o.(*berthv1.Task).NodeId = "n1"
			return true
		}}
	}
	if _, err := s.Update(ctx, changes); err != nil {
		t.Fatalf("update: %v", err)
	}
	after, _, err := store.List(ctx, s, store.TasksPrefix, func() *berthv1.Task { return &berthv1.Task{} })
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range after {
		if tk.NodeId != "n1" {
			t.Fatalf("task %s node = %q, want n1", tk.GetMeta().GetId(), tk.NodeId)
		}
		if tk.GetMeta().GetId() == other.GetMeta().GetId() && tk.DesiredState != berthv1.TaskState_TASK_STATE_SHUTDOWN {
			t.Fatalf("the concurrent write was lost")
		}
	}
}

func TestCacheFollowsStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := newStore(t)
	pre := task("before", "s1", "n1")
	var txn store.Txn
	txn.Create(taskKey(pre), pre)
	if _, err := s.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	c := store.NewCache(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sub := c.Subscribe()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache run: %v", err)
		}
	})
	<-c.Synced()
	if _, ok := c.Task("before"); !ok {
		t.Fatalf("cache misses the task written before it started")
	}
	post := task("after", "s1", "n2")
	var txn2 store.Txn
	txn2.Create(taskKey(post), post)
	rev, err := s.Commit(ctx, &txn2)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.WaitRevision(wctx, rev); err != nil {
		t.Fatal(err)
	}
	if got := len(c.ServiceTasks("s1")); got != 2 {
		t.Fatalf("service index has %d tasks, want 2", got)
	}
	if got := c.NodeTasks("n2"); len(got) != 1 || got[0].GetMeta().GetId() != "after" {
		t.Fatalf("node index = %v", got)
	}
	var del store.Txn
	del.Delete(taskKey(pre), 0)
	rev, err = s.Commit(ctx, &del)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(wctx, rev); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Task("before"); ok {
		t.Fatalf("deleted task still cached")
	}
	var seen []store.Event
	for len(seen) < 3 {
		select {
		case <-sub.Ready():
			evs, _ := sub.Drain()
			seen = append(seen, evs...)
		case <-wctx.Done():
			t.Fatalf("saw %d events, want resync, put, delete", len(seen))
		}
	}
	if seen[0].Kind != store.KindResync || seen[1].Action != store.ActionPut || seen[2].Action != store.ActionDelete {
		t.Fatalf("events = %+v", seen)
	}
	if seen[2].Object.GetMeta().GetId() != "before" {
		t.Fatalf("delete event carries %v", seen[2].Object)
	}
}
