package dispatcher

import (
	"context"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Only the leader takes agent sessions. A term starts when Run starts and
// ends with Run; agents that reach another server are told where the
// leader is.

func (d *Dispatcher) startTerm(ctx context.Context) {
	d.mu.Lock()
	d.term = ctx
	d.mu.Unlock()
}

// endTerm closes every session: their agents reconnect to the next
// leader, which judges their nodes; this server judges none any more.
func (d *Dispatcher) endTerm() {
	d.mu.Lock()
	d.term = nil
	for _, s := range d.sessions {
		s.cancel()
	}
	d.mu.Unlock()
}

func (d *Dispatcher) currentTerm() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.term
}

// fenced returns ctx with the fence of term, so writes made for a session
// fail once the term has ended.
func fenced(ctx, term context.Context) context.Context {
	if f, ok := store.FenceFrom(term); ok {
		return store.WithFence(ctx, f)
	}
	return ctx
}

// Heard returns when the agent of node nodeID last sent anything on its
// session, and false when it has no session with this server.
func (d *Dispatcher) Heard(nodeID string) (time.Time, bool) {
	d.mu.Lock()
	s := d.sessions[nodeID]
	d.mu.Unlock()
	if s == nil {
		return time.Time{}, false
	}
	return time.Unix(0, s.lastHeard.Load()), true
}

// notLeader refuses a session, naming the leader in the trailer.
func (d *Dispatcher) notLeader(stream berthv1.AgentService_SessionServer) error {
	leader := ""
	if d.cfg.Leader != nil {
		leader = d.cfg.Leader()
	}
	if leader == "" {
		return status.Error(codes.Unavailable, "this server does not lead the cluster and no leader is elected yet: try again shortly")
	}
	stream.SetTrailer(metadata.Pairs(berthv1.LeaderMetadataKey, leader))
	return status.Errorf(codes.Unavailable, "this server does not lead the cluster; the leader is at %s", leader)
}

// servers returns the servers' addresses and the gossip configuration
// seeded with every server's gossip member, for a welcome.
func (d *Dispatcher) servers(ctx context.Context) ([]string, *berthv1.GossipConfig) {
	g := d.cfg.Gossip
	if d.cfg.Servers == nil {
		return nil, g
	}
	list, err := d.cfg.Servers(ctx)
	if err != nil {
		d.log.Warn("listing servers for a welcome", "err", err)
		return nil, g
	}
	var addrs, seeds []string
	for _, s := range list {
		addrs = append(addrs, s.Address)
		if s.GossipAddress != "" {
			seeds = append(seeds, s.GossipAddress)
		}
	}
	if g != nil && len(seeds) > 0 {
		g = proto.Clone(g).(*berthv1.GossipConfig)
		g.Seeds = seeds
	}
	return addrs, g
}

// awaitReconnects gives the agents of a new term a while to find the new
// leader, then marks the nodes still without a session unreachable: a
// node that died with the old leader closed no session with this one.
func (d *Dispatcher) awaitReconnects(ctx context.Context) {
	t := time.NewTimer(silentHeartbeats * d.cfg.HeartbeatPeriod)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	// This server never heard the lost nodes: their last heartbeat stays
	// what the last record write said.
	lost := map[string]time.Time{}
	for _, n := range d.cfg.Cache.Nodes() {
		if id := n.GetMeta().GetId(); n.Status == berthv1.NodeStatus_NODE_STATUS_READY && !d.connected(id) {
			lost[id] = time.Time{}
		}
	}
	// One batch: after a failover, many nodes may be missing at once.
	if err := d.markUnreachable(ctx, "no session with the leader since it was elected", berthv1.ContactLoss_CONTACT_LOSS_UNSPECIFIED, lost); err != nil && ctx.Err() == nil {
		d.log.Warn("marking nodes unreachable", "nodes", len(lost), "err", err)
	}
}
