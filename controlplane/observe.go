package controlplane

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthproject/berth/controlplane/clustermetrics"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
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

// registerClusterMetrics registers with reg (nil: none) the cluster's
// metrics as this server's cache sees them (services, nodes, the leader)
// and the expiry of the cluster CA's certificate; the counters among them
// follow the cache until runCtx ends.
func (s *Server) registerClusterMetrics(runCtx context.Context, reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	self := s.servers.self.Address
	cm := clustermetrics.New(s.cache, s.id, func() bool { return s.leader.Address() == self })
	if err := metrics.Register(reg, cm, metrics.CertExpiry("ca", s.authority.ClusterID(), s.authority.NotAfter)); err != nil {
		return err
	}
	s.tasks.Go("cluster metrics", func() error { return cm.Follow(runCtx, s.cache) })
	return nil
}
