package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/seal"
	"google.golang.org/protobuf/proto"
)

func TestOpenCreatesThenLoads(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := newMemStore()
	first, err := Open(ctx, store, testKEK, clock.Now)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	if store.creates != 1 {
		t.Fatalf("first Open called CreateCA %d times, want 1", store.creates)
	}
	second, err := Open(ctx, store, testKEK, clock.Now)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if store.creates != 1 {
		t.Errorf("second Open created another CA")
	}
	if !bytes.Equal(first.CACertPEM(), second.CACertPEM()) || first.ClusterID() != second.ClusterID() || first.Digest() != second.Digest() {
		t.Fatalf("reopened CA differs: %s/%s vs %s/%s", first.ClusterID(), first.Digest(), second.ClusterID(), second.Digest())
	}
	if first.ClusterID() == "" {
		t.Errorf("cluster id is empty")
	}

	block, _ := pem.Decode(first.CACertPEM())
	if block == nil {
		t.Fatalf("CACertPEM is not PEM: %q", first.CACertPEM())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	if !cert.IsCA || cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA certificate: IsCA %v, key %v; want a CA with an ECDSA key", cert.IsCA, cert.PublicKeyAlgorithm)
	}
	if got, want := cert.NotAfter, clock.Now().Add(10*365*24*time.Hour); !got.Equal(want) {
		t.Errorf("CA expires %v, want %v", got, want)
	}
	if got := identity.CADigest(block.Bytes); got != first.Digest() {
		t.Errorf("Digest() = %s, want CADigest of the certificate %s", first.Digest(), got)
	}
}

func TestOpenRace(t *testing.T) {
	const servers = 4
	store := newMemStore()
	var barrier sync.WaitGroup
	barrier.Add(servers)
	store.loadBarrier = &barrier

	authorities := make([]*Authority, servers)
	errs := make([]error, servers)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			authorities[i], errs[i] = Open(context.Background(), store, testKEK, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
	}
	if store.creates != servers {
		t.Errorf("CreateCA called %d times, want %d (every server missed the CA)", store.creates, servers)
	}
	for i, a := range authorities[1:] {
		if a.Digest() != authorities[0].Digest() || a.ClusterID() != authorities[0].ClusterID() {
			t.Errorf("server %d opened CA %s, server 0 opened %s", i+1, a.Digest(), authorities[0].Digest())
		}
	}
}

// failingStore returns err from CreateCA.
type failingStore struct {
	*memStore
	err error
}

func (f failingStore) CreateCA(context.Context, *berthv1.ClusterCA) error { return f.err }

func TestOpenErrors(t *testing.T) {
	valid, other := plainRecord(t), plainRecord(t)
	sealed, err := newClusterCA(time.Now(), testKEK)
	if err != nil {
		t.Fatal(err)
	}
	otherCluster := proto.Clone(sealed).(*berthv1.ClusterCA)
	otherCluster.ClusterId = "another"
	tests := []struct {
		name  string
		store Persistence
		want  string
		kek   *seal.Key
	}{
		{"create fails", failingStore{newMemStore(), errors.New("etcd: no leader")}, "store new cluster CA: etcd: no leader", testKEK},
		{"exists but unloadable", failingStore{newMemStore(), ErrExists}, "none could be loaded", testKEK},
		{"damaged certificate", storeWith(&berthv1.ClusterCA{Certificate: []byte("x"), Key: valid.Key, ClusterId: "c"}), "damaged", testKEK},
		{"damaged key", storeWith(&berthv1.ClusterCA{Certificate: valid.Certificate, Key: []byte("x"), ClusterId: "c"}), "damaged", testKEK},
		{"mismatched key", storeWith(&berthv1.ClusterCA{Certificate: valid.Certificate, Key: other.Key, ClusterId: "c"}), "key does not match", testKEK},
		{"no cluster id", storeWith(&berthv1.ClusterCA{Certificate: valid.Certificate, Key: valid.Key}), "no cluster id", testKEK},
		{"another key-encryption key", storeWith(sealed), "--kek-file or --unlock-key", otherKEK},
		{"sealed for another cluster id", storeWith(otherCluster), "opening the cluster CA key", testKEK},
		{"no key-encryption key", storeWith(sealed), "no key-encryption key", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.store, tt.kek, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func storeWith(ca *berthv1.ClusterCA) *memStore {
	s := newMemStore()
	s.ca = ca
	return s
}

// plainRecord is a CA record as servers from before the key-encryption
// key stored it: the key in the clear.
func plainRecord(t *testing.T) *berthv1.ClusterCA {
	t.Helper()
	rec, err := newClusterCA(time.Now(), testKEK)
	if err != nil {
		t.Fatal(err)
	}
	rec.Key, err = testKEK.Open(seal.KindCAKey, rec.ClusterId, rec.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	rec.SealedKey = nil
	return rec
}

func TestNewCAIsSealed(t *testing.T) {
	store := newMemStore()
	a, err := Open(context.Background(), store, testKEK, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := store.ca
	if len(rec.Key) != 0 || len(rec.SealedKey) == 0 {
		t.Fatalf("stored CA has key %d bytes, sealed key %d bytes; want only a sealed key", len(rec.Key), len(rec.SealedKey))
	}
	plain, err := testKEK.Open(seal.KindCAKey, a.ClusterID(), rec.SealedKey)
	if err != nil || !bytes.Contains(plain, []byte("PRIVATE KEY")) {
		t.Fatalf("sealed key opens to %d bytes, %v", len(plain), err)
	}
}

func TestOpenLegacyRecord(t *testing.T) {
	rec := plainRecord(t)
	a, err := Open(context.Background(), storeWith(rec), testKEK, nil)
	if err != nil {
		t.Fatalf("Open of a record with the key in the clear: %v", err)
	}
	if a.ClusterID() != rec.ClusterId {
		t.Errorf("cluster id %s, want %s", a.ClusterID(), rec.ClusterId)
	}
	k1, err := LegacyCredentialKey(rec)
	if err != nil || len(k1) != 32 {
		t.Fatalf("LegacyCredentialKey = %d bytes, %v", len(k1), err)
	}
	// Sealing the key leaves the secrets derived from it as they were:
	// join tokens and gossip keep working after the migration.
	sealedRec := proto.Clone(rec).(*berthv1.ClusterCA)
	sealedRec.SealedKey, err = SealKey(testKEK, rec.ClusterId, rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	sealedRec.Key = nil
	b, err := Open(context.Background(), storeWith(sealedRec), testKEK, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.GossipKey(), b.GossipKey()) || !bytes.Equal(a.state().tokenKey, b.state().tokenKey) {
		t.Error("the keys derived from the CA key changed when it was sealed")
	}
	if _, err := LegacyCredentialKey(sealedRec); err == nil {
		t.Error("LegacyCredentialKey of a sealed record did not fail")
	}
}
