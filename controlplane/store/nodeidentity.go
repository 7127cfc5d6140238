package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// NodeNamesPrefix holds one claim per node name, whose value is the id of
// the node that holds it: a name stays bound to the node (and the
// certificate) that joined with it until `berth node rm` frees it, and two
// agents joining at once with one name never both get it.
const NodeNamesPrefix = Root + "node-names/"

// NodeNameKey is the claim on node name.
func NodeNameKey(name string) string { return NodeNamesPrefix + name }

// GetVersioned reads a plain message (one without Meta, such as a join
// token record) from key and returns the key's mod revision, for a
// transaction that guards on it (Txn.Guard); ErrNotFound when it is absent.
func (s *Store) GetVersioned(ctx context.Context, key string, msg proto.Message) (int64, error) {
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

// ListMessages reads every plain message (one without Meta) under prefix.
func ListMessages[T proto.Message](ctx context.Context, s *Store, prefix string, newT func() T) ([]T, error) {
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m := newT()
		if err := proto.Unmarshal(kv.Value, m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		out = append(out, m)
	}
	return out, nil
}
