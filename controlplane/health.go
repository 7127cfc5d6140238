package controlplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthproject/berth/internal/metrics"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// healthKey is read (it need not exist) to see that etcd answers a
// linearizable read, which needs a quorum.
const healthKey = "/berth/health"

// registerHealth adds the server's checks to h (nil adds none). Live: the
// store cache, which every component reads, answers. Ready: etcd answers
// with a quorum, the cache holds a full copy of the store, and the leader
// is known (clients and agents asking this server get sent there).
func (s *Server) registerHealth(h *metrics.Health) {
	if h == nil {
		return
	}
	h.Live("cache", func(context.Context) error {
		s.cache.Revision() // takes the cache's lock: a wedged watch holds it
		return nil
	})
	h.Ready("etcd", func(ctx context.Context) error {
		if _, err := s.etcd.Get(ctx, healthKey, clientv3.WithCountOnly()); err != nil {
			return fmt.Errorf("etcd does not answer: %w", err)
		}
		return nil
	})
	h.Ready("cache", func(context.Context) error {
		select {
		case <-s.cache.Synced():
			return nil
		default:
			return errors.New("the store cache is still loading")
		}
	})
	h.Ready("leader", func(context.Context) error {
		if s.leader.Address() == "" {
			return errors.New("no leader known")
		}
		return nil
	})
}
