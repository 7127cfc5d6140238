package store

import (
	"context"
	"fmt"
	"io"
)

// Snapshot streams a consistent copy of the whole etcd database through
// etcd's maintenance API: the embedded member or a member of an external
// cluster, whichever the store's client reaches. The stream ends with
// etcd's own sha256 of what came before it, as `etcdctl snapshot save`
// writes it, so etcd's restore checks it. Close it when done.
func (s *Store) Snapshot(ctx context.Context) (io.ReadCloser, error) {
	rc, err := s.cli.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting an etcd snapshot: %w", err)
	}
	return rc, nil
}
