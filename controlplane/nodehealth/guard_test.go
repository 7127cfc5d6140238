package nodehealth

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"github.com/berthproject/berth/internal/gossip"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestGuardHolds(t *testing.T) {
	now := time.Now()
	g := Guard{Share: 0.5, MinNodes: 3, Window: 10 * time.Second}
	alive := Contact{Counted: true}
	lostNow := Contact{Counted: true, Lost: true, Since: now.Add(-time.Second)}
	lostLongAgo := Contact{Counted: true, Lost: true, Since: now.Add(-time.Minute)}
	gone := Contact{}
	nodes := func(parts ...any) []Contact {
		var out []Contact
		for i := 0; i < len(parts); i += 2 {
			for range parts[i].(int) {
				out = append(out, parts[i+1].(Contact))
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		guard Guard
		nodes []Contact
		held  bool
		want  bool
	}{
		{"none lost", g, nodes(10, alive), false, false},
		{"one of ten lost", g, nodes(9, alive, 1, lostNow), false, false},
		{"exactly half is not more than half", g, nodes(5, alive, 5, lostNow), false, false},
		{"six of ten at once", g, nodes(4, alive, 6, lostNow), false, true},
		{"every node at once", g, nodes(200, lostNow), false, true},
		{"six of ten, but one by one over minutes", g, nodes(4, alive, 3, lostLongAgo, 3, lostNow), false, false},
		{"held: still six of ten out of contact, long ago", g, nodes(4, alive, 6, lostLongAgo), true, true},
		{"held: four of ten still out of contact", g, nodes(6, alive, 4, lostLongAgo), true, true},
		{"held: contact returned to most", g, nodes(8, alive, 2, lostLongAgo), true, false},
		{"two nodes: below the minimum", g, nodes(2, lostNow), false, false},
		{"three nodes, two lost", g, nodes(1, alive, 2, lostNow), false, true},
		{"nodes not counted do not dilute the share", g, nodes(20, gone, 2, alive, 3, lostNow), false, true},
		{"turned off", Guard{Share: 0, MinNodes: 3, Window: 10 * time.Second}, nodes(10, lostNow), false, false},
		{"a stricter share", Guard{Share: 0.8, MinNodes: 3, Window: 10 * time.Second}, nodes(3, alive, 7, lostNow), false, false},
		{"empty cluster", g, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.guard.Holds(tc.nodes, now, tc.held); got != tc.want {
				t.Errorf("Holds = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVerdictsWhileGuardHolds: while the guard holds, nodes out of
// contact become or stay unreachable, never down; a node an operator
// confirmed down stays down; after the lift, the grace starts again.
func TestVerdictsWhileGuardHolds(t *testing.T) {
	now := time.Now()
	const grace = 10 * time.Second
	failed := gossip.State{Since: now}
	alive := gossip.State{Alive: true, Since: now.Add(-time.Hour)}
	for _, tc := range []struct {
		name     string
		held     bool
		liftedAt time.Time
		status   berthv1.NodeStatus
		since    time.Time
		gossip   gossip.State
		want     berthv1.NodeStatus
		message  string
	}{
		{"ready, gossip saw it fail: unreachable, not down", true, time.Time{}, berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Minute), failed, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "berth node down"},
		{"unreachable and failed: stays unreachable", true, time.Time{}, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-time.Second), failed, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "control plane's network"},
		{"unreachable past the grace: stays unreachable", true, time.Time{}, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-time.Hour), alive, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "not down"},
		{"operator confirmed down: stays down", true, time.Time{}, berthv1.NodeStatus_NODE_STATUS_DOWN, now.Add(-time.Second), failed, berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED, ""},
		{"lifted a moment ago: a new grace", false, now.Add(-time.Second), berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-time.Hour), alive, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "gossip still sees"},
		{"lifted a moment ago, gossip failed: a new grace", false, now.Add(-time.Second), berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-time.Hour), failed, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "gossip"},
		{"lifted past the grace: down", false, now.Add(-grace), berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-time.Hour), alive, berthv1.NodeStatus_NODE_STATUS_DOWN, "no contact for 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGossip()
			g.set("n", tc.gossip)
			h := New(nil, nil, g, slog.New(slog.DiscardHandler), grace)
			h.held, h.liftedAt = tc.held, tc.liftedAt
			n := &berthv1.Node{Meta: &berthv1.Meta{Id: "n"}, Status: tc.status, StatusMessage: "agent disconnected", StatusSince: timestamppb.New(tc.since)}
			v, _ := h.verdict(n, now)
			if v.status != tc.want || !strings.Contains(v.message, tc.message) {
				t.Fatalf("verdict = %v %q; want %v with %q", v.status, v.message, tc.want, tc.message)
			}
		})
	}
}

// TestContact: what the guard counts of each node.
func TestContact(t *testing.T) {
	now := time.Now()
	const grace, quiet = 10 * time.Second, 2500 * time.Millisecond
	for _, tc := range []struct {
		name   string
		status berthv1.NodeStatus
		since  time.Time
		gossip *gossip.State
		heard  heardAt
		want   Contact
	}{
		{"ready and talking", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Hour), nil, heardAt{"n", now}, Contact{Counted: true}},
		{"ready, session silent", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Hour), nil, heardAt{"n", now.Add(-3 * time.Second)}, Contact{Counted: true, Lost: true, Since: now.Add(-3 * time.Second)}},
		{"ready, no session here yet (a new leader)", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Hour), nil, heardAt{"other", now}, Contact{Counted: true}},
		{"ready, gossip saw it die, but its session talks", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Hour), &gossip.State{Since: now.Add(-time.Second)}, heardAt{"n", now}, Contact{Counted: true}},
		{"ready, no session here, gossip saw it die", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Hour), &gossip.State{Since: now.Add(-time.Second)}, heardAt{"other", now}, Contact{Counted: true, Lost: true, Since: now.Add(-time.Second)}},
		{"unreachable", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-time.Minute), nil, heardAt{}, Contact{Counted: true, Lost: true, Since: now.Add(-time.Minute)}},
		{"down a moment ago", berthv1.NodeStatus_NODE_STATUS_DOWN, now.Add(-time.Second), nil, heardAt{}, Contact{Counted: true, Lost: true, Since: now.Add(-time.Second)}},
		{"down long ago", berthv1.NodeStatus_NODE_STATUS_DOWN, now.Add(-time.Hour), nil, heardAt{}, Contact{Since: now.Add(-time.Hour)}},
		{"never connected", berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED, now, nil, heardAt{}, Contact{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGossip()
			if tc.gossip != nil {
				g.set("n", *tc.gossip)
			}
			h := New(nil, nil, g, slog.New(slog.DiscardHandler), grace).WithSessions(tc.heard, quiet)
			n := &berthv1.Node{Meta: &berthv1.Meta{Id: "n"}, Status: tc.status, StatusSince: timestamppb.New(tc.since)}
			got := h.contact(n, now)
			if got.Counted != tc.want.Counted || got.Lost != tc.want.Lost || (got.Lost && !got.Since.Equal(tc.want.Since)) {
				t.Errorf("contact = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestMassLossMarksNoneDown: three of four nodes die at once by gossip's
// word: they become unreachable, none down, and one event says why. When
// contact returns to two of them, the guard lifts, and the last one gets
// a new grace instead of going down at once.
func TestMassLossMarksNoneDown(t *testing.T) {
	s := storetest.New(t)
	c := storetest.NewCache(t, s)
	hourAgo := timestamppb.New(time.Now().Add(-time.Hour))
	ids := []string{"a", "b", "c", "d"}
	var nodes []*berthv1.Node
	for _, id := range ids {
		nodes = append(nodes, &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: "node-" + id, Status: berthv1.NodeStatus_NODE_STATUS_READY, StatusSince: hourAgo})
	}
	createNodes(t, s, c, nodes...)
	g := newFakeGossip()
	for _, id := range ids {
		g.set(id, gossip.State{Alive: true, Since: hourAgo.AsTime()})
	}
	run(t, New(s, c, g, slog.New(slog.DiscardHandler), time.Hour))

	for _, id := range ids[:3] {
		g.set(id, gossip.State{Since: time.Now()})
	}
	for _, id := range ids[:3] {
		n := waitStatus(t, c, id, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE)
		if !strings.Contains(n.StatusMessage, "berth node down") {
			t.Errorf("node %s: message %q does not say how to confirm it down", id, n.StatusMessage)
		}
	}
	if n, _ := c.Node("d"); n.Status != berthv1.NodeStatus_NODE_STATUS_READY {
		t.Errorf("the node still in contact is %v", n.Status)
	}
	waitEvent(t, s, "mass-loss", "3 of 4 nodes lost contact at once")

	// Contact returns to a and b: their agents register again.
	var changes []store.Change
	for _, id := range ids[:2] {
		n, _ := c.Node(id)
		changes = append(changes, store.Change{Key: store.NodeKey(id), Current: n, Apply: func(o store.Object) bool {
			n := o.(*berthv1.Node)
			n.Status, n.StatusSince, n.StatusMessage = berthv1.NodeStatus_NODE_STATUS_READY, timestamppb.Now(), ""
			return true
		}})
		g.set(id, gossip.State{Alive: true, Since: time.Now()})
	}
	rev, err := s.Update(context.Background(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, s, "mass-loss-lifted", "contact returned")
	n := waitNode(t, c, "c", "unreachable without the guard's words", func(n *berthv1.Node) bool {
		return !strings.Contains(n.StatusMessage, "berth node down")
	})
	if n.Status != berthv1.NodeStatus_NODE_STATUS_UNREACHABLE {
		t.Errorf("after the lift, node c is %v (%q), want unreachable for a new grace", n.Status, n.StatusMessage)
	}
}

// waitEvent waits for an event of action whose message holds says.
func waitEvent(t *testing.T, s *store.Store, action, says string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := s.FlushEvents(context.Background()); err != nil {
			t.Fatal(err)
		}
		evs, err := s.Events(context.Background(), time.Time{}, 100, func(ev *berthv1.Event) bool { return ev.Action == action })
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 1 {
			t.Fatalf("%d %s events, want one", len(evs), action)
		}
		if len(evs) == 1 {
			if !strings.Contains(evs[0].Message, says) {
				t.Fatalf("%s event says %q, want %q", action, evs[0].Message, says)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event", action)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUnreachableNodeTalkingAgainIsReady: a node marked unreachable while
// its session lived on (gossip's word, a silent spell) is ready once its
// agent is heard again on that session; one whose session ended is not.
func TestUnreachableNodeTalkingAgainIsReady(t *testing.T) {
	now := time.Now()
	const quiet = 4 * time.Second
	since := now.Add(-10 * time.Second)
	for _, tc := range []struct {
		name  string
		heard heardAt
		want  berthv1.NodeStatus
	}{
		{"heard since, a moment ago", heardAt{"n", now.Add(-time.Second)}, berthv1.NodeStatus_NODE_STATUS_READY},
		{"last heard before it was marked", heardAt{"n", since.Add(-time.Second)}, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE},
		{"no session", heardAt{"other", now}, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(nil, nil, nil, slog.New(slog.DiscardHandler), time.Hour).WithSessions(tc.heard, quiet)
			n := &berthv1.Node{Meta: &berthv1.Meta{Id: "n"}, Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, StatusMessage: "agent disconnected", StatusSince: timestamppb.New(since)}
			if v, _ := h.verdict(n, now); v.status != tc.want {
				t.Errorf("verdict = %v %q, want %v", v.status, v.message, tc.want)
			}
		})
	}
}

// TestHeldGuardLeavesOpenSessionsToTheDispatcher: while the guard holds,
// a ready node gossip saw die whose session is open but silent is left
// as it is (its session's end marks it unreachable), not rewritten.
func TestHeldGuardLeavesOpenSessionsToTheDispatcher(t *testing.T) {
	now := time.Now()
	g := newFakeGossip()
	g.set("n", gossip.State{Since: now})
	h := New(nil, nil, g, slog.New(slog.DiscardHandler), time.Hour).WithSessions(heardAt{"n", now.Add(-time.Minute)}, 4*time.Second)
	h.held = true
	n := &berthv1.Node{Meta: &berthv1.Meta{Id: "n"}, Status: berthv1.NodeStatus_NODE_STATUS_READY, StatusSince: timestamppb.New(now.Add(-time.Hour))}
	if v, _ := h.verdict(n, now); v.status != berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED {
		t.Errorf("verdict = %v %q, want none", v.status, v.message)
	}
}

// TestJustRegisteredNodeIsNotDownedByGossip: a node that registered a
// moment ago, whose session the dispatcher does not list yet, is not
// downed by a gossip death newer than its registration until the quiet
// has passed.
func TestJustRegisteredNodeIsNotDownedByGossip(t *testing.T) {
	now := time.Now()
	const quiet = 4 * time.Second
	for _, tc := range []struct {
		name       string
		registered time.Time
		want       berthv1.NodeStatus
	}{
		{"a moment ago", now.Add(-time.Second), berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED},
		{"longer ago than the quiet", now.Add(-5 * time.Second), berthv1.NodeStatus_NODE_STATUS_DOWN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGossip()
			g.set("n", gossip.State{Since: now})
			h := New(nil, nil, g, slog.New(slog.DiscardHandler), time.Hour).WithSessions(heardAt{"other", now}, quiet)
			n := &berthv1.Node{Meta: &berthv1.Meta{Id: "n"}, Status: berthv1.NodeStatus_NODE_STATUS_READY, StatusSince: timestamppb.New(tc.registered)}
			if v, _ := h.verdict(n, now); v.status != tc.want {
				t.Errorf("verdict = %v %q, want %v", v.status, v.message, tc.want)
			}
			if c := h.contact(n, now); c.Lost != (tc.want == berthv1.NodeStatus_NODE_STATUS_DOWN) {
				t.Errorf("contact = %+v", c)
			}
		})
	}
}
