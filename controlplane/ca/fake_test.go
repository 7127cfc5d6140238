package ca

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"google.golang.org/protobuf/proto"
)

// memStore is an in-memory Persistence. It copies records in and out, as a
// real store would, so tests cannot pass by sharing pointers.
type memStore struct {
	mu      sync.Mutex
	ca      *berthv1.ClusterCA
	tokens  map[string]*berthv1.JoinTokenRecord
	creates int // CreateCA calls
	// loadBarrier, when set, holds each LoadCA call that finds no CA until
	// loadBarrier.Wait returns, so that racing Opens all miss the CA.
	loadBarrier *sync.WaitGroup
}

var _ Persistence = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{tokens: map[string]*berthv1.JoinTokenRecord{}}
}

func (m *memStore) LoadCA(context.Context) (*berthv1.ClusterCA, error) {
	m.mu.Lock()
	ca, barrier := m.ca, m.loadBarrier
	m.mu.Unlock()
	if ca == nil && barrier != nil {
		barrier.Done()
		barrier.Wait()
	}
	if ca == nil {
		return nil, nil
	}
	return proto.Clone(ca).(*berthv1.ClusterCA), nil
}

func (m *memStore) CreateCA(_ context.Context, ca *berthv1.ClusterCA) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	// The barrier has served its purpose once anyone stores a CA: the
	// reloads after ErrExists must not wait on it.
	m.loadBarrier = nil
	if m.ca != nil {
		return fmt.Errorf("put /berth/pki/ca: %w", ErrExists)
	}
	m.ca = proto.Clone(ca).(*berthv1.ClusterCA)
	return nil
}

func (m *memStore) SwapCA(_ context.Context, old, next *berthv1.ClusterCA) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !proto.Equal(m.ca, old) {
		return fmt.Errorf("swap /berth/pki/ca: %w", ErrChanged)
	}
	m.ca = proto.Clone(next).(*berthv1.ClusterCA)
	return nil
}

func (m *memStore) PutToken(_ context.Context, rec *berthv1.JoinTokenRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[rec.GetId()] = proto.Clone(rec).(*berthv1.JoinTokenRecord)
	return nil
}

func (m *memStore) ListTokens(context.Context) ([]*berthv1.JoinTokenRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*berthv1.JoinTokenRecord
	for _, r := range m.tokens {
		out = append(out, proto.Clone(r).(*berthv1.JoinTokenRecord))
	}
	return out, nil
}

func (m *memStore) DeleteToken(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, id)
	return nil
}

func (m *memStore) tokenCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tokens)
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openCA opens a fresh authority on a new memStore with the real clock,
// which TLS handshakes check certificates against.
func openCA(t *testing.T) (*Authority, *memStore) {
	t.Helper()
	store := newMemStore()
	a, err := Open(context.Background(), store, testKEK, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a, store
}

// testKEK and otherKEK are two clusters' key-encryption keys.
var testKEK, otherKEK = mustKEK(1), mustKEK(2)

func mustKEK(fill byte) *seal.Key {
	raw := make([]byte, seal.KeySize)
	for i := range raw {
		raw[i] = fill
	}
	k, err := seal.New(raw)
	if err != nil {
		panic(err)
	}
	return k
}
