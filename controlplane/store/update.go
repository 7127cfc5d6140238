package store

import (
	"context"
	"errors"
	"fmt"

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
	var rev int64
	for start := 0; start < len(changes); start += MaxTxnOps {
		end := min(start+MaxTxnOps, len(changes))
		r, err := s.updateChunk(ctx, changes[start:end])
		if err != nil {
			return rev, err
		}
		rev = max(rev, r)
	}
	return rev, nil
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
