package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
)

func TestMirrorFollowsAPrefix(t *testing.T) {
	st := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var txn store.Txn
	txn.Put(store.RevokedKey("01"), &berthv1.RevokedCertificate{Serial: "01", Subject: "node/a"})
	if _, err := st.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var changes []string
	m := store.NewMirror(st, store.RevokedPrefix, func() *berthv1.RevokedCertificate { return &berthv1.RevokedCertificate{} },
		func(name string, v *berthv1.RevokedCertificate, deleted bool) {
			mu.Lock()
			defer mu.Unlock()
			if deleted {
				name = "-" + name
			}
			changes = append(changes, name)
		}, nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() { stop(); <-done }()

	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Get("01"); !ok || v.GetSubject() != "node/a" {
		t.Fatalf("Get(01) = %v, %v after the first list; want node/a", v, ok)
	}

	txn = store.Txn{}
	txn.Put(store.RevokedKey("02"), &berthv1.RevokedCertificate{Serial: "02", Subject: "user/bob"})
	txn.Delete(store.RevokedKey("01"), 0)
	rev, err := st.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get("01"); ok {
		t.Error("01 is still mirrored after its delete")
	}
	if got := m.List(); len(got) != 1 || got[0].GetSerial() != "02" {
		t.Errorf("List = %v; want only 02", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 {
		t.Errorf("onChange saw %v; want a put of 02 and a delete of 01", changes)
	}
}
