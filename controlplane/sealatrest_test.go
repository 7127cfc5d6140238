package controlplane

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/pem"
	"path/filepath"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const password = "correct horse battery staple"

// legacyCluster stores what a cluster made before the key-encryption key
// holds: a CA record with its key in the clear, and a registry credential
// sealed under the key derived from it. It returns the CA key's PEM.
func legacyCluster(t *testing.T, st *store.Store) []byte {
	t.Helper()
	ctx := context.Background()
	throwaway, err := seal.New(bytes.Repeat([]byte{9}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	p := caPersistence{st}
	if _, err := ca.Open(ctx, p, throwaway, nil); err != nil {
		t.Fatal(err)
	}
	rec, err := p.LoadCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec.Key, err = throwaway.Open(seal.KindCAKey, rec.ClusterId, rec.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	rec.SealedKey = nil
	legacy, err := ca.LegacyCredentialKey(rec)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(legacy)
	aead, _ := cipher.NewGCM(block)
	sealed := make([]byte, 1+aead.NonceSize())
	sealed[0] = 1
	rand.Read(sealed[1:])
	sealed = aead.Seal(sealed, sealed[1:], []byte(password), []byte("registry.example.com"))
	var txn store.Txn
	txn.Put(store.CAKey, rec)
	txn.Put(store.RegistryKey("registry.example.com"), &berthv1.RegistryCredential{
		Meta:     &berthv1.Meta{Id: "c1", CreatedAt: timestamppb.Now()},
		Registry: "registry.example.com", Username: "ann", SealedSecret: sealed,
	})
	if _, err := st.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	return rec.Key
}

// startSealed does what a server does at start: opens the key-encryption
// key, seals what is readable, and opens the CA and the credentials.
func startSealed(t *testing.T, st *store.Store, file string) (*ca.Authority, *registry.Credentials) {
	t.Helper()
	ctx := context.Background()
	kek, err := openKEK(ctx, st, kekSource{file: file}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := sealAtRest(ctx, st, kek, quiet); err != nil {
		t.Fatal(err)
	}
	auth, err := ca.Open(ctx, caPersistence{st}, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds := registry.New(registry.Config{Store: st, Key: kek, Log: quiet})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- creds.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-creds.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("credentials not read")
	}
	return auth, creds
}

// assertNowhereInEtcd fails when any value in etcd holds one of secrets.
func assertNowhereInEtcd(t *testing.T, st *store.Store, secrets map[string][]byte) {
	t.Helper()
	resp, err := st.Client().Get(context.Background(), "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		t.Fatal("etcd is empty")
	}
	for _, kv := range resp.Kvs {
		for name, s := range secrets {
			if bytes.Contains(kv.Value, s) {
				t.Errorf("%s is readable in etcd at %s", name, kv.Key)
			}
		}
	}
}

// keySecrets are the forms of a CA key (PEM) one could find in etcd.
func keySecrets(t *testing.T, keyPEM []byte) map[string][]byte {
	t.Helper()
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("no PEM key")
	}
	return map[string][]byte{
		"the CA key (PEM)": keyPEM[40:100],
		"the CA key (DER)": block.Bytes,
		"the password":     []byte(password),
	}
}

func TestSealAtRestMigratesAnOlderCluster(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	keyPEM := legacyCluster(t, st)
	before, err := caPersistence{st}.LoadCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), seal.FileName)
	auth, creds := startSealed(t, st, file)
	if auth.ClusterID() != before.ClusterId {
		t.Errorf("cluster id %s, want %s", auth.ClusterID(), before.ClusterId)
	}
	user, secret, ok, err := creds.Lookup("registry.example.com")
	if err != nil || !ok || user != "ann" || secret != password {
		t.Fatalf("Lookup after the migration = %q, %q, %v, %v", user, secret, ok, err)
	}
	after, err := caPersistence{st}.LoadCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Key) != 0 || len(after.SealedKey) == 0 {
		t.Fatalf("CA record after the migration: key %d bytes, sealed key %d bytes", len(after.Key), len(after.SealedKey))
	}
	assertNowhereInEtcd(t, st, keySecrets(t, keyPEM))

	// The history that held them is compacted.
	if _, err := st.Client().Get(ctx, store.CAKey, clientv3.WithRev(1)); err == nil {
		t.Error("etcd's history before the migration can still be read")
	}

	// Once only: a second start changes nothing.
	rev, err := st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	startSealed(t, st, file)
	if again, _ := st.Revision(ctx); again != rev {
		t.Errorf("a second start wrote to etcd (revision %d to %d)", rev, again)
	}
}

func TestNewClusterKeepsNoSecretReadable(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	file := filepath.Join(t.TempDir(), seal.FileName)
	_, creds := startSealed(t, st, file)
	if err := creds.Put(ctx, "registry.example.com", "ann", password); err != nil {
		t.Fatal(err)
	}
	rec, err := caPersistence{st}.LoadCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Key) != 0 || len(rec.SealedKey) == 0 {
		t.Fatalf("a new CA record has key %d bytes, sealed key %d bytes", len(rec.Key), len(rec.SealedKey))
	}
	raw, err := seal.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := seal.New(raw)
	keyPEM, err := kek.Open(seal.KindCAKey, rec.ClusterId, rec.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	assertNowhereInEtcd(t, st, keySecrets(t, keyPEM))
}
