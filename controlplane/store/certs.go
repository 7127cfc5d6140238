package store

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// SwapMessage replaces the plain message at key with next, only if it is
// still equal to old (read earlier): a compare-and-swap for records without
// Meta, such as the cluster CA. It fails with ErrConflict when the stored
// message is another, and ErrNotFound when there is none.
func (s *Store) SwapMessage(ctx context.Context, key string, old, next proto.Message) error {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	stored := old.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(resp.Kvs[0].Value, stored); err != nil {
		return fmt.Errorf("decoding %s: %w", key, err)
	}
	if !proto.Equal(stored, old) {
		return fmt.Errorf("%s: %w", key, ErrConflict)
	}
	var txn Txn
	txn.Guard(key, resp.Kvs[0].ModRevision)
	txn.Put(key, next)
	if _, err := s.Commit(ctx, &txn); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}
