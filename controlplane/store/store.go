package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict means a guarded write lost a race: someone wrote the key
	// since it was read. Read again and retry.
	ErrConflict = errors.New("conflicting write")
	// ErrTooLarge means a transaction holds more writes than etcd takes
	// in one (MaxTxnOps); it writes nothing.
	ErrTooLarge = errors.New("transaction too large")
)

// Object is any stored protobuf object that carries Meta.
type Object interface {
	proto.Message
	GetMeta() *berthv1.Meta
}

// MaxTxnOps bounds the operations of one transaction: etcd's default limit
// (128), which external clusters keep unless told otherwise, less the one
// the leader's fence takes: etcd counts a nested transaction's operations
// against what its parent leaves.
const MaxTxnOps = 127

// Store reads and writes Berth's objects in etcd.
type Store struct {
	cli    *clientv3.Client
	events eventRecorder
	txns   *prometheus.HistogramVec
}

// New returns a Store on an etcd client.
func New(cli *clientv3.Client) *Store { return &Store{cli: cli, txns: newTxnHistogram()} }

// Client returns the etcd client, for tests that look at etcd itself (its
// history, raw keys). Product code goes through the store's typed helpers;
// TestOnlyTheStoreImportsEtcd keeps it so.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Revision returns etcd's current revision. A writer whose guarded write
// conflicted waits for its cache to reach it (Cache.WaitRevision) before it
// reads again: the cache may already hold the write that won, so waiting
// for "one more" revision could wait for a write that never comes.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, SettingsKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("reading the store's revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// decode unmarshals value into obj and stamps obj's version with the key's
// mod revision.
func decode(value []byte, modRev int64, obj Object) error {
	if err := proto.Unmarshal(value, obj); err != nil {
		return fmt.Errorf("decoding %T: %w", obj, err)
	}
	if m := obj.GetMeta(); m != nil {
		m.Version = modRev
	}
	return nil
}

// Get reads key into obj, or returns ErrNotFound.
func (s *Store) Get(ctx context.Context, key string, obj Object) error {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision, obj)
}

// GetMessage reads a plain message (one without Meta) from key.
func (s *Store) GetMessage(ctx context.Context, key string, msg proto.Message) error {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return proto.Unmarshal(resp.Kvs[0].Value, msg)
}

// listPage is how many keys one range request reads; large lists are read
// in pages at one revision so no single response grows without bound.
const listPage = 5000

// List reads every object under prefix at one revision, returned with it.
func List[T Object](ctx context.Context, s *Store, prefix string, newT func() T) ([]T, int64, error) {
	var out []T
	rev, err := s.scan(ctx, prefix, func(key, value []byte, modRev int64) error {
		obj := newT()
		if err := decode(value, modRev, obj); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		out = append(out, obj)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// scan calls each with every key under prefix, in pages read at one
// revision, which it returns.
func (s *Store) scan(ctx context.Context, prefix string, each func(key, value []byte, modRev int64) error) (int64, error) {
	var rev int64
	key, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, key, opts...)
		if err != nil {
			return 0, fmt.Errorf("listing %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := each(kv.Key, kv.Value, kv.ModRevision); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Txn collects writes that commit together or not at all. Each write may be
// guarded: Create fails if the key exists, Update and Delete fail if the key
// changed since the object was read.
type Txn struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	err  error
}

func (t *Txn) put(key string, msg proto.Message) {
	b, err := proto.Marshal(msg)
	if err != nil {
		if t.err == nil {
			t.err = fmt.Errorf("encoding %s: %w", key, err)
		}
		return
	}
	t.ops = append(t.ops, clientv3.OpPut(key, string(b)))
}

// Create writes obj at key, which must not exist.
func (t *Txn) Create(key string, obj proto.Message) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", 0))
	t.put(key, obj)
}

// Update writes obj at key, which must still be at obj's Meta.Version.
func (t *Txn) Update(key string, obj Object) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", obj.GetMeta().GetVersion()))
	t.put(key, obj)
}

// Put writes msg at key whatever is there.
func (t *Txn) Put(key string, msg proto.Message) { t.put(key, msg) }

// Delete removes key; when version is not zero, only if key is still at it.
func (t *Txn) Delete(key string, version int64) {
	if version != 0 {
		t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", version))
	}
	t.ops = append(t.ops, clientv3.OpDelete(key))
}

// Guard makes the transaction depend on key without writing it: it fails
// when key is no longer at version (0: when key exists). A write that
// refers to an object (a spec that names a secret's version) guards it, so
// a change to the object in between makes the writer read it again.
func (t *Txn) Guard(key string, version int64) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", version))
}

// GuardPrefix makes the transaction fail when any key under prefix was
// written after revision rev: a decision read from the cache at rev (no
// service uses this secret) still holds when the write commits.
func (t *Txn) GuardPrefix(prefix string, rev int64) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix())
}

// Len is the number of writes collected.
func (t *Txn) Len() int { return len(t.ops) }

// Commit applies txn, returning the revision it committed at. A guard that
// no longer holds makes it fail with ErrConflict and write nothing.
func (s *Store) Commit(ctx context.Context, txn *Txn) (int64, error) {
	if txn.err != nil {
		return 0, txn.err
	}
	if len(txn.ops) == 0 {
		return 0, nil
	}
	if len(txn.ops) > MaxTxnOps || len(txn.cmps) > MaxTxnOps {
		return 0, fmt.Errorf("%w: %d writes, over the limit of %d", ErrTooLarge, len(txn.ops), MaxTxnOps)
	}
	start := time.Now()
	resp, succeeded, err := s.commitTxn(ctx, txn.cmps, txn.ops)
	if errors.Is(err, ErrFenced) {
		s.observeTxn(start, txnFenced)
		return 0, err
	}
	if err != nil {
		s.observeTxn(start, txnError)
		return 0, fmt.Errorf("committing: %w", err)
	}
	if !succeeded {
		s.observeTxn(start, txnConflict)
		return 0, ErrConflict
	}
	s.observeTxn(start, txnCommitted)
	return resp.Header.Revision, nil
}
