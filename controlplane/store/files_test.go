package store_test

import (
	"context"
	"errors"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
)

// TestCachePinFiles: a spec naming older versions of a secret and a config
// (a rollback's) is pointed at the stored ones; a reference to one that is
// not stored is left as it was.
func TestCachePinFiles(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var txn store.Txn
	txn.Create(store.SecretKey("team", "pw"), &berthv1.Secret{Meta: &berthv1.Meta{}, Namespace: "team", Name: "pw", Version: 3, Digest: "hmac-sha256:3"})
	txn.Create(store.ConfigKey("team", "conf"), &berthv1.Config{Meta: &berthv1.Meta{}, Namespace: "team", Name: "conf", Version: 2, Digest: "sha256:2"})
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.NewCache(t, s)
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	spec := &berthv1.ServiceSpec{
		Secrets: []*berthv1.FileReference{{Name: "pw", Version: 1, Digest: "hmac-sha256:1"}, {Name: "gone", Version: 4, Digest: "hmac-sha256:4"}},
		Configs: []*berthv1.FileReference{{Name: "conf", Version: 1, Digest: "sha256:1"}},
	}
	c.PinFiles("team", spec)
	for _, tc := range []struct {
		ref     *berthv1.FileReference
		version uint64
		digest  string
	}{
		{spec.Secrets[0], 3, "hmac-sha256:3"},
		{spec.Secrets[1], 4, "hmac-sha256:4"},
		{spec.Configs[0], 2, "sha256:2"},
	} {
		if tc.ref.Version != tc.version || tc.ref.Digest != tc.digest {
			t.Errorf("%s after PinFiles: version %d digest %s, want %d %s", tc.ref.Name, tc.ref.Version, tc.ref.Digest, tc.version, tc.digest)
		}
	}
	// Another namespace's secret of the same name is not taken.
	other := &berthv1.ServiceSpec{Secrets: []*berthv1.FileReference{{Name: "pw", Version: 1}}}
	c.PinFiles("default", other)
	if other.Secrets[0].Version != 1 {
		t.Errorf("a secret of namespace team pinned a reference of namespace default: version %d", other.Secrets[0].Version)
	}
}

// TestTxnGuard: a guarded transaction commits while the key is at the
// version read, and writes nothing once it changed or when a key that
// should be absent exists.
func TestTxnGuard(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var txn store.Txn
	txn.Create(store.SecretKey("team", "pw"), &berthv1.Secret{Meta: &berthv1.Meta{}, Name: "pw", Version: 1})
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	write := func(guardKey string, version int64) error {
		var txn store.Txn
		txn.Guard(guardKey, version)
		txn.Put(store.ServiceKey("team", "shop", "web"), &berthv1.Service{Name: "web"})
		_, err := s.Commit(ctx, &txn)
		return err
	}
	if err := write(store.SecretKey("team", "pw"), rev); err != nil {
		t.Fatalf("guard on the version read: %v", err)
	}
	if err := write(store.SecretKey("team", "pw"), rev-1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("guard on a stale version: %v, want ErrConflict", err)
	}
	if err := write(store.SecretKey("team", "pw"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("guard that the key is absent, while it exists: %v, want ErrConflict", err)
	}
	if err := write(store.SecretKey("team", "other"), 0); err != nil {
		t.Fatalf("guard that an absent key is absent: %v", err)
	}
}

// TestTxnGuardPrefix: a transaction guarded on a prefix at a revision
// fails once any key under the prefix was written after it.
func TestTxnGuardPrefix(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	put := func(name string, guard func(*store.Txn)) (int64, error) {
		var txn store.Txn
		if guard != nil {
			guard(&txn)
		}
		txn.Put(store.ServiceKey("team", "shop", name), &berthv1.Service{Name: name})
		return s.Commit(ctx, &txn)
	}
	rev, err := put("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	prefix := store.ServicesPrefix + "team/"
	del := func(rev int64) error {
		var txn store.Txn
		txn.GuardPrefix(prefix, rev)
		txn.Delete(store.SecretKey("team", "pw"), 0)
		_, err := s.Commit(ctx, &txn)
		return err
	}
	if err := del(rev); err != nil {
		t.Fatalf("nothing under the prefix changed since %d: %v", rev, err)
	}
	if _, err := put("api", nil); err != nil {
		t.Fatal(err)
	}
	if err := del(rev); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a service was written after %d: %v, want ErrConflict", rev, err)
	}
	if _, err := put("other", func(txn *store.Txn) { txn.GuardPrefix(store.ServicesPrefix+"elsewhere/", rev) }); err != nil {
		t.Fatalf("a guard on another prefix: %v", err)
	}
}
