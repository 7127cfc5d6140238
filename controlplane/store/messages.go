package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// This file holds the typed access for records that are plain messages
// (no Meta: the cluster CA, join tokens) and for the few raw operations
// other packages used to do on the etcd client themselves, so that only
// this package speaks etcd.

// ListMessages reads every plain message (one without Meta) under
// prefix at one revision, returned with it.
func ListMessages[T proto.Message](ctx context.Context, s *Store, prefix string, newT func() T) ([]T, int64, error) {
	var out []T
	rev, err := s.scan(ctx, prefix, func(key, value []byte, _ int64) error {
		msg := newT()
		if err := proto.Unmarshal(value, msg); err != nil {
			return fmt.Errorf("decoding %s: %w", key, err)
		}
		out = append(out, msg)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// GetMessageVersion reads a plain message from key and returns the
// revision it was last written at, for a Txn.Guard on it; ErrNotFound
// when key is absent.
func (s *Store) GetMessageVersion(ctx context.Context, key string, msg proto.Message) (int64, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err := proto.Unmarshal(resp.Kvs[0].Value, msg); err != nil {
		return 0, fmt.Errorf("decoding %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// Delete removes key whatever its version, inside ctx's fence when it has
// one, and reports whether it was there and the revision of the delete (a
// Mirror or Cache reaches it with WaitRevision). Removing an absent key
// writes nothing and returns revision 0.
func (s *Store) Delete(ctx context.Context, key string) (deleted bool, rev int64, err error) {
	resp, _, err := s.commitTxn(ctx, nil, []clientv3.Op{clientv3.OpDelete(key)})
	if err != nil {
		return false, 0, fmt.Errorf("removing %s: %w", key, err)
	}
	r := resp.Responses[0]
	if _, fenced := FenceFrom(ctx); fenced {
		r = r.GetResponseTxn().GetResponses()[0]
	}
	if r.GetResponseDeleteRange().GetDeleted() == 0 {
		return false, 0, nil
	}
	return true, resp.Header.Revision, nil
}

// Compact discards etcd's history before rev: values overwritten or
// removed before it (a key once stored in the clear) are gone for good.
// Watches that have not read up to rev must list again (Cache and Mirror
// do).
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if _, err := s.cli.Compact(ctx, rev); err != nil {
		return fmt.Errorf("compacting the store's history up to revision %d: %w", rev, err)
	}
	return nil
}
