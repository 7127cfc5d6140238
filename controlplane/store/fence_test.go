package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
)

// TestFence writes only while the term's election key is the one the
// fence names, and still tells a lost race from a lost term.
func TestFence(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	leaderKey := store.LeaderPrefix + "term"
	put, err := s.Client().Put(ctx, leaderKey, "server-a")
	if err != nil {
		t.Fatal(err)
	}
	fenced := store.WithFence(ctx, store.Fence{Key: leaderKey, Revision: put.Header.Revision})

	tk := task("t1", "s1", "")
	var create store.Txn
	create.Create(taskKey(tk), tk)
	if _, err := s.Commit(fenced, &create); err != nil {
		t.Fatalf("create in the term: %v", err)
	}
	var again store.Txn
	again.Create(taskKey(tk), tk)
	if _, err := s.Commit(fenced, &again); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("create of an existing key in the term: got %v, want ErrConflict", err)
	}

	// A whole batch fits in etcd's limit with the fence around it.
	var batch store.Txn
	for i := range store.MaxTxnOps {
		b := task(fmt.Sprintf("b%d", i), "s1", "")
		batch.Create(taskKey(b), b)
	}
	if _, err := s.Commit(fenced, &batch); err != nil {
		t.Fatalf("a fenced batch of %d writes: %v", store.MaxTxnOps, err)
	}

	// Another server's term: the key is made again, at a new revision.
	if _, err := s.Client().Delete(ctx, leaderKey); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(ctx, leaderKey, "server-b"); err != nil {
		t.Fatal(err)
	}
	late := task("t2", "s1", "")
	var stale store.Txn
	stale.Create(taskKey(late), late)
	if _, err := s.Commit(fenced, &stale); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("write after the term ended: got %v, want ErrFenced", err)
	}
	if err := s.Get(ctx, taskKey(late), &berthv1.Task{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a fenced write reached etcd: %v", err)
	}
	// Update goes through the same commit.
	cur := &berthv1.Task{}
	if err := s.Get(ctx, taskKey(tk), cur); err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(fenced, []store.Change{{Key: taskKey(tk), Current: cur, Apply: func(o store.Object) bool {
		o.(*berthv1.Task).NodeId = "n1"
		return true
	}}})
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("update after the term ended: got %v, want ErrFenced", err)
	}
}
