package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// Change is one read-modify-write of a stored object.
type Change struct {
	Key string
	// Current is the object as last read, usually from the cache. It is
	// never modified.
	Current Object
	// Apply changes a private copy of the object and reports whether there
	// is anything to write.
	Apply func(Object) bool
}

// maxUpdateAttempts bounds the retries of one batch that keeps conflicting.
const maxUpdateAttempts = 8

// Update applies changes in as few transactions as etcd's limits allow,
// each write guarded by the revision its object was read at. The changes of
// a transaction that conflicts are read again from etcd and retried; a
// change whose key no longer exists is dropped. Many updates per
// transaction is what keeps status traffic cheap: etcd pays one fsync per
// transaction.
func (s *Store) Update(ctx context.Context, changes []Change) (int64, error) {
	var chunks [][]Change
	for start := 0; start < len(changes); start += MaxTxnOps {
		chunks = append(chunks, changes[start:min(start+MaxTxnOps, len(changes))])
	}
	return inParallel(len(chunks), func(i int) (int64, error) { return s.updateChunk(ctx, chunks[i]) })
}

// CommitAll commits txns, several at a time, and returns the highest
// revision they committed at. Each commits or fails on its own; the first
// error is returned once all have ended.
func (s *Store) CommitAll(ctx context.Context, txns []*Txn) (int64, error) {
	return inParallel(len(txns), func(i int) (int64, error) { return s.Commit(ctx, txns[i]) })
}

// parallelTxns is how many transactions one writer keeps in flight: etcd
// writes what arrives together with one disk sync, so a few at once go
// several times faster than one after the other.
const parallelTxns = 4

// inParallel runs commit(0..n-1), parallelTxns at a time, and returns
// the highest revision and the first error.
func inParallel(n int, commit func(i int) (int64, error)) (int64, error) {
	if n == 1 {
		return commit(0)
	}
	var (
		mu       sync.Mutex
		rev      int64
		firstErr error
		wg       sync.WaitGroup
	)
	slots := make(chan struct{}, parallelTxns)
	for i := range n {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			r, err := commit(i)
			mu.Lock()
			defer mu.Unlock()
			rev = max(rev, r)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return rev, firstErr
}

func (s *Store) updateChunk(ctx context.Context, chunk []Change) (int64, error) {
	current := make([]Object, len(chunk))
	for i, c := range chunk {
		current[i] = c.Current
	}
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		var txn Txn
		for i, c := range chunk {
			if current[i] == nil {
				continue
			}
			next := proto.Clone(current[i]).(Object)
			if c.Apply(next) {
				txn.Update(c.Key, next)
			}
		}
		rev, err := s.Commit(ctx, &txn)
		if !errors.Is(err, ErrConflict) {
			return rev, err
		}
		if err := s.reread(ctx, chunk, current); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("updating %d objects: %w after %d attempts", len(chunk), ErrConflict, maxUpdateAttempts)
}

// reread refreshes current with what etcd holds now, in one transaction.
func (s *Store) reread(ctx context.Context, chunk []Change, current []Object) error {
	ops := make([]clientv3.Op, len(chunk))
	for i, c := range chunk {
		ops[i] = clientv3.OpGet(c.Key)
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("re-reading after a conflict: %w", err)
	}
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if len(kvs) == 0 || current[i] == nil {
			current[i] = nil
			continue
		}
		obj := current[i].ProtoReflect().New().Interface().(Object)
		if err := decode(kvs[0].Value, kvs[0].ModRevision, obj); err != nil {
			return fmt.Errorf("%s: %w", chunk[i].Key, err)
		}
		current[i] = obj
	}
	return nil
}
