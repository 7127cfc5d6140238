package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Claim writes value at key, which must not exist: a claim on what the key
// names (a network's subnet), made in the same transaction as the object
// that holds it, so two writers racing for it never both win. The value
// says who holds it; Delete(key, 0) releases it.
func (t *Txn) Claim(key, value string) {
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	t.ops = append(t.ops, clientv3.OpPut(key, value))
}

// ClaimHolder returns the value of the claim at key, or ErrNotFound.
func (s *Store) ClaimHolder(ctx context.Context, key string) (string, error) {
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}
