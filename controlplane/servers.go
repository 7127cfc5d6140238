package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// serverRegistry keeps this server's ServerInfo in etcd while it runs, so
// agents and clients learn every server, and lists them all.
type serverRegistry struct {
	cli    *clientv3.Client
	self   *berthv1.ServerInfo
	leader *leaderView
	lease  time.Duration
	log    *slog.Logger
}

// run keeps the record until ctx ends, then removes it. The record lives
// on a lease: a server that dies leaves the list within the lease.
func (r *serverRegistry) run(ctx context.Context) error {
	value, err := proto.Marshal(r.self)
	if err != nil {
		return err
	}
	key := store.ServersPrefix + r.self.Id
	for ctx.Err() == nil {
		session, err := newSession(ctx, r.cli, r.lease)
		if err != nil {
			r.log.Warn("server registration: no etcd session; retrying", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		if _, err := r.cli.Put(ctx, key, string(value), clientv3.WithLease(session.Lease())); err != nil {
			session.Close()
			if ctx.Err() == nil {
				r.log.Warn("server registration; retrying", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-session.Done():
			r.log.Warn("server registration lease expired; registering again")
		}
		// Closing revokes the lease, which removes the record.
		session.Close()
	}
	return nil
}

// list returns every registered server, the leader marked, by address.
func (r *serverRegistry) list(ctx context.Context) ([]*berthv1.ServerInfo, error) {
	resp, err := r.cli.Get(ctx, store.ServersPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("listing servers: %w", err)
	}
	leader := r.leader.Address()
	out := make([]*berthv1.ServerInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		info := &berthv1.ServerInfo{}
		if err := proto.Unmarshal(kv.Value, info); err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		info.Leader = leader != "" && info.Address == leader
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, nil
}
