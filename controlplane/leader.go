package controlplane

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/berthproject/berth/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultLeaderLease is how long a leader that died without resigning
// keeps its leadership: the election key lives on a lease of this TTL.
// Two seconds is the shortest lease an etcd cluster with default timing
// grants; one tuned for a shorter election timeout grants one second.
const DefaultLeaderLease = 2 * time.Second

// embeddedLeaderLease is the lease of a server on its embedded etcd: no
// other server contends, so a short lease buys nothing, while a busy
// etcd that renews it late would cost the server its leadership, and
// every agent its session.
const embeddedLeaderLease = 10 * time.Second

// campaign runs lead whenever this server is the elected leader, until ctx
// ends. Several servers sharing one etcd cluster take turns this way. The
// election key's value is the server's address, so the others can send
// agents to the leader. lead's context carries the term's fence: its
// writes fail once another server leads.
func campaign(ctx context.Context, cli *clientv3.Client, log *slog.Logger, address string, lease time.Duration, lead func(context.Context) error) error {
	for ctx.Err() == nil {
		session, err := newSession(ctx, cli, lease)
		if err != nil {
			log.Warn("leader election: no etcd session; retrying", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
			continue
		}
		election := concurrency.NewElection(session, store.LeaderPrefix)
		if err := election.Campaign(ctx, address); err != nil {
			session.Close()
			continue
		}
		log.Info("leading the cluster", "term", election.Rev())
		lctx, cancel := context.WithCancel(store.WithFence(ctx, store.Fence{Key: election.Key(), Revision: election.Rev()}))
		done := make(chan error, 1)
		go func() { done <- lead(lctx) }()
		select {
		case <-session.Done():
			log.Warn("lost leadership: the election lease expired")
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

// newSession opens an etcd session (a kept-alive lease) whose lease is
// lease, in whole seconds and at least one.
func newSession(ctx context.Context, cli *clientv3.Client, lease time.Duration) (*concurrency.Session, error) {
	ttl := max(int(lease.Round(time.Second)/time.Second), 1)
	return concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
}

// leaderView follows who leads: the address in the oldest election key.
type leaderView struct {
	mu      sync.Mutex
	address string
}

// Address is the leader's address, or "" while none is known.
func (v *leaderView) Address() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.address
}

func (v *leaderView) set(addr string) {
	v.mu.Lock()
	v.address = addr
	v.mu.Unlock()
}

// run keeps the view current until ctx ends.
func (v *leaderView) run(ctx context.Context, cli *clientv3.Client, log *slog.Logger) error {
	for ctx.Err() == nil {
		resp, err := cli.Get(ctx, store.LeaderPrefix, clientv3.WithFirstCreate()...)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("reading the leader; retrying", "err", err)
			}
			sleepCtx(ctx, time.Second)
			continue
		}
		addr := ""
		if len(resp.Kvs) > 0 {
			addr = string(resp.Kvs[0].Value)
		}
		v.set(addr)
		wctx, cancel := context.WithCancel(ctx)
		wch := cli.Watch(wctx, store.LeaderPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		// Any change of the election keys may change the leader: read
		// again. A watch that ends (compaction, lost connection) too.
		for wr := range wch {
			if wr.Err() != nil || len(wr.Events) > 0 {
				break
			}
		}
		cancel()
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
