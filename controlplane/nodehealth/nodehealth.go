// Package nodehealth gives nodes their verdicts, fusing two signals: the
// agent's session with the control plane (kept by the dispatcher) and the
// gossip among servers and agents.
//
//   - ready: the agent's session is up.
//   - unreachable: the session is lost but gossip still sees the node
//     alive (or cannot tell): a flaky link, or an agent being restarted.
//     Its tasks stay where they are, so nothing runs twice.
//   - down: gossip confirms the node failed, or it has been out of contact
//     for the grace period. The orchestrator replaces its tasks.
//
// The leader runs it.
package nodehealth

import (
	"context"
	"log/slog"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/internal/gossip"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultGrace is how long a node may be unreachable before it is down.
const DefaultGrace = 10 * time.Second

// Gossip is the membership view verdicts read: gossip member names are
// node ids.
type Gossip interface {
	State(name string) (gossip.State, bool)
	Changed() <-chan struct{}
}

// Sessions tells when each node's agent was last heard on its session
// with the control plane.
type Sessions interface {
	Heard(nodeID string) (at time.Time, connected bool)
}

// NodeHealth turns nodes unreachable and down.
type NodeHealth struct {
	store  *store.Store
	cache  *store.Cache
	gossip Gossip
	log    *slog.Logger
	grace  time.Duration
	now    func() time.Time
	// sessions and quiet: a node whose agent spoke on its session within
	// quiet is alive, whatever gossip says.
	sessions Sessions
	quiet    time.Duration
	guard    Guard
	// held is whether the guard held at the last judgement; liftedAt is
	// when it last lifted: the nodes it kept unreachable get their grace
	// again from then. Only Run's goroutine uses them.
	held     bool
	liftedAt time.Time
}

// New returns the node health component; grace 0 means DefaultGrace, and
// a nil gossip leaves verdicts to the session and the grace alone.
func New(s *store.Store, c *store.Cache, g Gossip, log *slog.Logger, grace time.Duration) *NodeHealth {
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &NodeHealth{store: s, cache: c, gossip: g, log: log, grace: grace, now: time.Now,
		guard: Guard{Share: DefaultGuardShare, MinNodes: DefaultGuardMinNodes, Window: grace}}
}

// WithGuard sets the share of nodes that must lose contact at once, and
// the fewest nodes, for the guard against mass eviction to hold (see
// Guard); share 0 or less turns it off. The window is the grace: losses
// closer together than that are one event.
func (h *NodeHealth) WithGuard(share float64, minNodes int) *NodeHealth {
	h.guard.Share, h.guard.MinNodes = share, minNodes
	return h
}

// WithSessions makes gossip's word that a ready node died count only once
// its agent has also been silent on its session for quiet (a heartbeat
// period or so): a machine whose CPUs are saturated answers probes late,
// but its heartbeats still arrive, and moving its tasks away would only
// add to the load.
func (h *NodeHealth) WithSessions(s Sessions, quiet time.Duration) *NodeHealth {
	h.sessions, h.quiet = s, quiet
	return h
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
	var gossipChanged <-chan struct{}
	if h.gossip != nil {
		gossipChanged = h.gossip.Changed()
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
		case <-gossipChanged:
		case <-sub.Ready():
			sub.Drain()
		}
	}
}

// verdict is a node's new status, and why.
type verdict struct {
	status  berthv1.NodeStatus
	message string
}

// judge writes the nodes' new verdicts, and returns when the next grace
// ends.
func (h *NodeHealth) judge(ctx context.Context) (time.Time, error) {
	now := h.now()
	nodes := h.cache.Nodes()
	var next time.Time
	var changes []store.Change
	var events []*berthv1.Event
	if ev := h.judgeGuard(nodes, now); ev != nil {
		events = append(events, ev)
	}
	for _, n := range nodes {
		v, due := h.verdict(n, now)
		if !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
		if v.status == berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED ||
			(v.status == n.Status && v.message == n.StatusMessage) {
			continue
		}
		from := n.Status
		if v.status != from {
			h.log.Warn("node verdict", "node", n.Name, "id", n.GetMeta().GetId(), "status", statusName(v.status), "why", v.message)
			events = append(events, &berthv1.Event{Kind: "node", ObjectId: n.GetMeta().GetId(), Action: statusName(v.status),
				Message:    "node " + n.Name + " is " + statusName(v.status) + ": " + v.message,
				Attributes: map[string]string{"node": n.Name, "from": statusName(from)}})
		}
		changes = append(changes, store.Change{Key: store.NodeKey(n.GetMeta().GetId()), Current: n, Apply: func(o store.Object) bool {
			n := o.(*berthv1.Node)
			// The session may have come back since the cache was read:
			// a verdict applies only to the status it was made on.
			if n.Status != from {
				return false
			}
			if n.Status != v.status {
				n.StatusSince = timestamppb.New(now)
			}
			n.Status, n.StatusMessage = v.status, v.message
			if v.status == berthv1.NodeStatus_NODE_STATUS_READY {
				n.ContactLoss = berthv1.ContactLoss_CONTACT_LOSS_UNSPECIFIED
			}
			return true
		}})
	}
	if h.held {
		// Sessions that come back before the dispatcher gave up on them
		// write nothing: look again while the guard holds.
		again := now.Add(max(h.quiet, time.Second))
		if next.IsZero() || again.Before(next) {
			next = again
		}
	}
	if _, err := h.store.Update(ctx, changes); err != nil {
		return next, err
	}
	for _, ev := range events {
		h.store.Record(ctx, h.log, ev.Kind, ev.ObjectId, ev.Action, ev.Message)
	}
	return next, nil
}

// verdict is what n's status should be now, or an unspecified status to
// leave it; due is when the grace of an unreachable node ends.
func (h *NodeHealth) verdict(n *berthv1.Node, now time.Time) (v verdict, due time.Time) {
	var g gossip.State
	known := false
	if h.gossip != nil {
		g, known = h.gossip.State(n.GetMeta().GetId())
	}
	failed := known && !g.Alive && !g.Left
	since := n.GetStatusSince().AsTime()
	switch n.Status {
	case berthv1.NodeStatus_NODE_STATUS_READY:
		// Gossip may declare a node dead before its session notices
		// (a dead machine closes no connection). A death older than
		// the session is of an earlier life of the node.
		if failed && g.Since.After(since) {
			session := false
			if h.sessions != nil {
				var at time.Time
				if at, session = h.sessions.Heard(n.GetMeta().GetId()); session && at.Add(h.quiet).After(now) {
					return verdict{}, at.Add(h.quiet)
				}
				// Registering is contact too, and the record is written
				// before the dispatcher lists the new session: without
				// this, a node gossip flaps on would be downed the moment
				// it registers again, over and over (seen at 200
				// simulated nodes on two busy cores).
				if since.Add(h.quiet).After(now) {
					return verdict{}, since.Add(h.quiet)
				}
			}
			switch {
			case h.held && session:
				// Its session is silent but open: the dispatcher
				// marks it unreachable if it stays so. Marking it
				// here too would only add writes while the guard
				// holds, and flip it back when it talks again.
				return verdict{}, time.Time{}
			case h.held:
				return verdict{berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "gossip: the node stopped answering probes; " + heldMessage}, time.Time{}
			}
			return verdict{berthv1.NodeStatus_NODE_STATUS_DOWN, "gossip: the node stopped answering probes"}, time.Time{}
		}
	case berthv1.NodeStatus_NODE_STATUS_UNREACHABLE:
		// Marked for gossip's word or a silent session, while its
		// session lived on: it talks again, so it is ready.
		if h.sessions != nil {
			if at, ok := h.sessions.Heard(n.GetMeta().GetId()); ok && at.After(since) && now.Sub(at) <= h.quiet {
				return verdict{berthv1.NodeStatus_NODE_STATUS_READY, ""}, time.Time{}
			}
		}
		// An agent that closed its session left its machine up and its
		// containers running: it is most likely restarting, and gossip
		// (which lives in the agent) only says the process is gone. It
		// gets the grace to come back, so an agent restart moves nothing.
		closed := n.GetContactLoss() == berthv1.ContactLoss_CONTACT_LOSS_CLOSED
		msg := n.StatusMessage
		switch {
		case closed && failed:
			msg = "the agent closed its session (its machine answered) and is gone from gossip; waiting for it to come back"
		case known && g.Alive:
			msg = "session lost; gossip still sees the node alive"
		case known && g.Left:
			msg = "session lost; the agent stopped"
		case failed:
			msg = "session lost, and gossip: the node stopped answering probes"
		}
		if h.held {
			// No timer: the guard lifts on a change (a session back,
			// gossip), which wakes Run.
			return verdict{berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, strings.TrimSuffix(msg, "; "+heldMessage) + "; " + heldMessage}, time.Time{}
		}
		msg = strings.TrimSuffix(msg, "; "+heldMessage)
		// A node the guard kept unreachable gets its grace again from
		// the lift: contact may be coming back to it too, and gossip
		// needs a while to see it alive again.
		recentLift := !h.liftedAt.IsZero() && now.Before(h.liftedAt.Add(h.grace))
		if failed && !recentLift && !closed {
			return verdict{berthv1.NodeStatus_NODE_STATUS_DOWN, msg}, time.Time{}
		}
		due = maxTime(since, h.liftedAt).Add(h.grace)
		if !due.After(now) {
			return verdict{berthv1.NodeStatus_NODE_STATUS_DOWN, "no contact for " + now.Sub(since).Round(time.Second).String()}, time.Time{}
		}
		return verdict{berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, msg}, due
	}
	return verdict{}, time.Time{}
}

// judgeGuard decides whether the guard holds over nodes at now, logs when
// it engages or lifts, and returns the event to record then (nil
// otherwise).
func (h *NodeHealth) judgeGuard(nodes []*berthv1.Node, now time.Time) *berthv1.Event {
	contacts := make([]Contact, 0, len(nodes))
	for _, n := range nodes {
		contacts = append(contacts, h.contact(n, now))
	}
	held := h.guard.Holds(contacts, now, h.held)
	if held == h.held {
		return nil
	}
	h.held = held
	counted, lost, _ := h.guard.count(contacts, now)
	if held {
		msg := engagedWords(lost, counted)
		h.log.Error(msg, "lost", lost, "nodes", counted)
		return &berthv1.Event{Kind: store.EventKindNode, Action: "mass-loss", Message: msg}
	}
	h.liftedAt = now
	msg := liftedWords(lost, counted)
	h.log.Warn(msg, "lost", lost, "nodes", counted)
	return &berthv1.Event{Kind: store.EventKindNode, Action: "mass-loss-lifted", Message: msg}
}

// contact is n's contact with the control plane as the guard counts it:
// unreachable nodes lost it when they became so. A ready node with a
// session here lost it when its session went silent for longer than
// quiet: an agent heard within quiet is in contact, whatever gossip says
// (on a saturated machine gossip declares live members dead by the
// dozen). A ready node without a session here lost it when gossip says it
// died; without that word it is not counted lost: after a leader change
// the dispatcher gives agents a while to reconnect, then marks the
// missing ones unreachable.
func (h *NodeHealth) contact(n *berthv1.Node, now time.Time) Contact {
	since := n.GetStatusSince().AsTime()
	switch n.Status {
	case berthv1.NodeStatus_NODE_STATUS_UNREACHABLE:
		return Contact{Counted: true, Lost: true, Since: since}
	case berthv1.NodeStatus_NODE_STATUS_DOWN:
		// Down within the window: lost with the others, and counted so
		// the share is of the nodes there were.
		recent := now.Sub(since) <= h.guard.Window
		return Contact{Counted: recent, Lost: recent, Since: since}
	case berthv1.NodeStatus_NODE_STATUS_READY:
		id := n.GetMeta().GetId()
		if h.sessions != nil {
			if at, ok := h.sessions.Heard(id); ok {
				at = maxTime(at, since)
				return Contact{Counted: true, Lost: now.Sub(at) > h.quiet, Since: at}
			}
			if now.Sub(since) <= h.quiet {
				// Registered a moment ago; its session is being listed.
				return Contact{Counted: true}
			}
		}
		if h.gossip != nil {
			if g, ok := h.gossip.State(id); ok && !g.Alive && !g.Left && g.Since.After(since) {
				return Contact{Counted: true, Lost: true, Since: g.Since}
			}
		}
		return Contact{Counted: true}
	}
	return Contact{}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func statusName(s berthv1.NodeStatus) string {
	switch s {
	case berthv1.NodeStatus_NODE_STATUS_READY:
		return "ready"
	case berthv1.NodeStatus_NODE_STATUS_UNREACHABLE:
		return "unreachable"
	case berthv1.NodeStatus_NODE_STATUS_DOWN:
		return "down"
	}
	return "unknown"
}
