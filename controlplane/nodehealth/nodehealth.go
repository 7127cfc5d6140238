// Package nodehealth gives nodes their verdicts. A node whose agent lost
// its session is unreachable; once it has been out of contact for the
// grace period it is down, and the orchestrator replaces its tasks. The
// leader runs it.
package nodehealth

import (
	"context"
	"log/slog"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultGrace is how long a node may be unreachable before it is down.
const DefaultGrace = 10 * time.Second

// NodeHealth turns unreachable nodes down.
type NodeHealth struct {
	store *store.Store
	cache *store.Cache
	log   *slog.Logger
	grace time.Duration
	now   func() time.Time
}

// New returns the node health component; grace 0 means DefaultGrace.
func New(s *store.Store, c *store.Cache, log *slog.Logger, grace time.Duration) *NodeHealth {
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &NodeHealth{store: s, cache: c, log: log, grace: grace, now: time.Now}
}

// Run gives verdicts until ctx ends.
func (h *NodeHealth) Run(ctx context.Context) error {
	sub := h.cache.Subscribe()
	defer h.cache.Unsubscribe(sub)
	select {
	case <-h.cache.Synced():
	case <-ctx.Done():
		return nil
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, err := h.judge(ctx)
		if err != nil && ctx.Err() == nil {
			h.log.Warn("node verdicts; retrying", "err", err)
			next = h.now().Add(time.Second)
		}
		if !next.IsZero() {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(max(next.Sub(h.now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-sub.Ready():
			sub.Drain()
		}
	}
}

// judge marks down the nodes unreachable for longer than the grace, and
// returns when the next one would be due.
func (h *NodeHealth) judge(ctx context.Context) (time.Time, error) {
	now := h.now()
	var next time.Time
	var changes []store.Change
	for _, n := range h.cache.Nodes() {
		if n.Status != berthv1.NodeStatus_NODE_STATUS_UNREACHABLE {
			continue
		}
		due := n.GetStatusSince().AsTime().Add(h.grace)
		if due.After(now) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		h.log.Warn("node is down", "node", n.Name, "id", n.GetMeta().GetId(), "unreachable for", now.Sub(n.GetStatusSince().AsTime()).Round(time.Millisecond))
		changes = append(changes, store.Change{Key: store.NodeKey(n.GetMeta().GetId()), Current: n, Apply: func(o store.Object) bool {
			n := o.(*berthv1.Node)
			if n.Status != berthv1.NodeStatus_NODE_STATUS_UNREACHABLE {
				return false
			}
			n.Status = berthv1.NodeStatus_NODE_STATUS_DOWN
			n.StatusMessage = "no contact for " + h.grace.String()
			n.StatusSince = timestamppb.New(now)
			return true
		}})
	}
	_, err := h.store.Update(ctx, changes)
	return next, err
}
