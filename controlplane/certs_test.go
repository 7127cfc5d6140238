package controlplane

import (
	"context"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestPruneRevoked(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	now := time.Now()
	entries := []*berthv1.RevokedCertificate{
		{Serial: "a1", Subject: "node/gone", ExpiresAt: timestamppb.New(now.Add(-time.Hour))},
		{Serial: "b2", Subject: "user/bob", ExpiresAt: timestamppb.New(now.Add(time.Hour))},
		{Serial: "c3", Subject: "user/eve"},
	}
	var txn store.Txn
	for _, e := range entries {
		txn.Put(store.RevokedKey(e.Serial), e)
	}
	if _, err := st.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	n, err := pruneRevoked(ctx, st, entries, now)
	if err != nil || n != 1 {
		t.Fatalf("pruneRevoked = %d, %v; want the one expired entry", n, err)
	}
	for serial, want := range map[string]bool{"a1": false, "b2": true, "c3": true} {
		err := st.GetMessage(ctx, store.RevokedKey(serial), &berthv1.RevokedCertificate{})
		if got := err == nil; got != want {
			t.Errorf("entry %s kept = %v, want %v (%v)", serial, got, want, err)
		}
	}
}
