package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestListMessagesAndGetMessageVersion(t *testing.T) {
	st := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var txn store.Txn
	for i := range 3 {
		id := fmt.Sprintf("tok%d", i)
		txn.Put(store.TokenKey(id), &berthv1.JoinTokenRecord{Id: id, MaxUses: uint32(i)})
	}
	rev, err := st.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	toks, listRev, err := store.ListMessages(ctx, st, store.TokensPrefix, func() *berthv1.JoinTokenRecord { return &berthv1.JoinTokenRecord{} })
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 3 || toks[2].GetId() != "tok2" || toks[2].GetMaxUses() != 2 || listRev < rev {
		t.Fatalf("ListMessages = %v at %d, want tok0..tok2 at %d or later", toks, listRev, rev)
	}

	got := &berthv1.JoinTokenRecord{}
	version, err := st.GetMessageVersion(ctx, store.TokenKey("tok1"), got)
	if err != nil || version != rev || got.GetId() != "tok1" {
		t.Fatalf("GetMessageVersion = %v, %d, %v; want tok1 at %d", got, version, err, rev)
	}
	if _, err := st.GetMessageVersion(ctx, store.TokenKey("none"), got); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMessageVersion of an absent key: %v, want ErrNotFound", err)
	}
	// The version guards a write: stale after another write.
	var put store.Txn
	put.Put(store.TokenKey("tok1"), got)
	if _, err := st.Commit(ctx, &put); err != nil {
		t.Fatal(err)
	}
	var guarded store.Txn
	guarded.Guard(store.TokenKey("tok1"), version)
	guarded.Put(store.TokenKey("tok1"), got)
	if _, err := st.Commit(ctx, &guarded); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a write guarded by a stale version: %v, want ErrConflict", err)
	}
}

func TestDelete(t *testing.T) {
	st := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var txn store.Txn
	txn.Put(store.RegistryKey("a.example"), &berthv1.RegistryCredential{Registry: "a.example"})
	txn.Put(store.RegistryKey("b.example"), &berthv1.RegistryCredential{Registry: "b.example"})
	txn.Put(store.LeaderPrefix+"term", &berthv1.JoinTokenRecord{})
	put, err := st.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	deleted, rev, err := st.Delete(ctx, store.RegistryKey("a.example"))
	if err != nil || !deleted || rev <= put {
		t.Fatalf("Delete of a present key = %v, %d, %v; want deleted after %d", deleted, rev, err, put)
	}
	if deleted, rev, err := st.Delete(ctx, store.RegistryKey("a.example")); err != nil || deleted || rev != 0 {
		t.Fatalf("Delete of an absent key = %v, %d, %v; want not deleted", deleted, rev, err)
	}

	// Inside a fence: deletes while the term lasts, refuses after.
	fenced := store.WithFence(ctx, store.Fence{Key: store.LeaderPrefix + "term", Revision: put})
	if deleted, _, err := st.Delete(fenced, store.RegistryKey("b.example")); err != nil || !deleted {
		t.Fatalf("Delete in the term = %v, %v; want deleted", deleted, err)
	}
	stale := store.WithFence(ctx, store.Fence{Key: store.LeaderPrefix + "term", Revision: put - 1})
	if _, _, err := st.Delete(stale, store.RegistryKey("b.example")); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Delete after the term: %v, want ErrFenced", err)
	}
}

func TestCompact(t *testing.T) {
	st := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := store.TokenKey("history")
	var first, second store.Txn
	first.Put(key, &berthv1.JoinTokenRecord{Id: "old"})
	old, err := st.Commit(ctx, &first)
	if err != nil {
		t.Fatal(err)
	}
	second.Put(key, &berthv1.JoinTokenRecord{Id: "new"})
	rev, err := st.Commit(ctx, &second)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Client().Get(ctx, key, clientv3.WithRev(old)); err == nil {
		t.Fatalf("revision %d is still readable after compacting to %d", old, rev)
	}
	if err := st.Compact(ctx, old); err == nil {
		t.Fatal("compacting to a revision already compacted succeeded")
	}
}
