package controlplane

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/berthproject/berth/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// leaseTTL is how long a dead leader keeps its leadership, in seconds.
const leaseTTL = 10

// campaign runs lead whenever this server is the elected leader, until ctx
// ends. Several servers sharing one etcd cluster take turns this way.
func campaign(ctx context.Context, cli *clientv3.Client, log *slog.Logger, lead func(context.Context) error) error {
	host, _ := os.Hostname()
	for ctx.Err() == nil {
		session, err := concurrency.NewSession(cli, concurrency.WithTTL(leaseTTL), concurrency.WithContext(ctx))
		if err != nil {
			log.Warn("leader election: no etcd session; retrying", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
			continue
		}
		election := concurrency.NewElection(session, store.LeaderPrefix)
		if err := election.Campaign(ctx, host); err != nil {
			session.Close()
			continue
		}
		log.Info("leading the cluster")
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- lead(lctx) }()
		select {
		case <-session.Done():
			log.Warn("lost leadership")
		case <-ctx.Done():
		case err := <-done:
			if err != nil {
				log.Error("leader task failed", "err", err)
			}
		}
		cancel()
		<-done
		resign, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = election.Resign(resign)
		rcancel()
		session.Close()
	}
	return nil
}

// sleepCtx waits d or until ctx ends, reporting whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
