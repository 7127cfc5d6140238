package nodehealth

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"github.com/berthproject/berth/internal/gossip"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeGossip is a membership view the test sets.
type fakeGossip struct {
	mu      sync.Mutex
	states  map[string]gossip.State
	changed chan struct{}
}

func newFakeGossip() *fakeGossip {
	return &fakeGossip{states: map[string]gossip.State{}, changed: make(chan struct{}, 1)}
}

func (g *fakeGossip) State(name string) (gossip.State, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.states[name]
	return s, ok
}

func (g *fakeGossip) Changed() <-chan struct{} { return g.changed }

func (g *fakeGossip) set(name string, s gossip.State) {
	g.mu.Lock()
	g.states[name] = s
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

func TestVerdicts(t *testing.T) {
	now := time.Now()
	const grace = 10 * time.Second
	alive := gossip.State{Alive: true, Since: now.Add(-time.Hour)}
	failedNow := gossip.State{Since: now}
	failedLongAgo := gossip.State{Since: now.Add(-time.Hour)}
	left := gossip.State{Left: true, Since: now}
	for _, tc := range []struct {
		name    string
		status  berthv1.NodeStatus
		since   time.Time
		gossip  *gossip.State
		want    berthv1.NodeStatus
		message string
		due     time.Time
		loss    berthv1.ContactLoss
	}{
		{"ready and alive", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Minute), &alive, berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED, "", time.Time{}, 0},
		{"ready, unknown to gossip", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Minute), nil, berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED, "", time.Time{}, 0},
		{"ready but gossip saw it fail", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Minute), &failedNow, berthv1.NodeStatus_NODE_STATUS_DOWN, "gossip", time.Time{}, 0},
		{"ready again after an old failure", berthv1.NodeStatus_NODE_STATUS_READY, now.Add(-time.Minute), &failedLongAgo, berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED, "", time.Time{}, 0},
		{"unreachable and failed", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now, &failedNow, berthv1.NodeStatus_NODE_STATUS_DOWN, "gossip", time.Time{}, 0},
		{"unreachable but alive", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now, &alive, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "still sees the node alive", now.Add(grace), 0},
		{"unreachable, agent left", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now, &left, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "agent stopped", now.Add(grace), 0},
		{"unreachable, unknown to gossip", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now, nil, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "agent disconnected", now.Add(grace), 0},
		{"alive but out of contact past the grace", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-grace), &alive, berthv1.NodeStatus_NODE_STATUS_DOWN, "no contact for 10s", time.Time{}, 0},
		{"down stays down", berthv1.NodeStatus_NODE_STATUS_DOWN, now.Add(-time.Hour), &failedLongAgo, berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED, "", time.Time{}, 0},
		// An agent that closed its session (SIGKILL, a crash: its
		// machine answered) is gone from gossip too, but most likely
		// restarts with its containers running: it gets the grace.
		{"agent closed its session, gone from gossip", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now, &failedNow, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "waiting for it to come back", now.Add(grace), berthv1.ContactLoss_CONTACT_LOSS_CLOSED},
		{"agent closed its session, not back after the grace", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now.Add(-grace), &failedNow, berthv1.NodeStatus_NODE_STATUS_DOWN, "no contact for 10s", time.Time{}, berthv1.ContactLoss_CONTACT_LOSS_CLOSED},
		{"silent and gone from gossip", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, now, &failedNow, berthv1.NodeStatus_NODE_STATUS_DOWN, "gossip", time.Time{}, berthv1.ContactLoss_CONTACT_LOSS_SILENT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGossip()
			if tc.gossip != nil {
				g.set("n", *tc.gossip)
			}
			h := New(nil, nil, g, slog.New(slog.DiscardHandler), grace)
			n := &berthv1.Node{Meta: &berthv1.Meta{Id: "n"}, Status: tc.status, StatusMessage: "agent disconnected", StatusSince: timestamppb.New(tc.since), ContactLoss: tc.loss}
			v, due := h.verdict(n, now)
			if v.status != tc.want || !strings.Contains(v.message, tc.message) || !due.Equal(tc.due) {
				t.Fatalf("verdict = %v %q due %v; want %v with %q due %v", v.status, v.message, due, tc.want, tc.message, tc.due)
			}
		})
	}
}

// heardAt is a Sessions with one connected agent last heard at a time.
type heardAt struct {
	id string
	at time.Time
}

func (h heardAt) Heard(id string) (time.Time, bool) { return h.at, id == h.id }

// TestGossipAloneDoesNotDownATalkingNode keeps a ready node whose agent
// still speaks on its session, though gossip saw it fail (a saturated
// machine answers probes late), and downs it once the session is quiet.
func TestGossipAloneDoesNotDownATalkingNode(t *testing.T) {
	now := time.Now()
	const quiet = 2500 * time.Millisecond
	g := newFakeGossip()
	g.set("n", gossip.State{Since: now})
	n := &berthv1.Node{Meta: &berthv1.Meta{Id: "n"}, Status: berthv1.NodeStatus_NODE_STATUS_READY, StatusSince: timestamppb.New(now.Add(-time.Minute))}
	for _, tc := range []struct {
		name     string
		sessions heardAt
		want     berthv1.NodeStatus
		due      time.Time
	}{
		{"heard a moment ago", heardAt{"n", now.Add(-time.Second)}, berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED, now.Add(-time.Second).Add(quiet)},
		{"quiet for longer", heardAt{"n", now.Add(-3 * time.Second)}, berthv1.NodeStatus_NODE_STATUS_DOWN, time.Time{}},
		{"no session here", heardAt{"other", now}, berthv1.NodeStatus_NODE_STATUS_DOWN, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(nil, nil, g, slog.New(slog.DiscardHandler), 10*time.Second).WithSessions(tc.sessions, quiet)
			v, due := h.verdict(n, now)
			if v.status != tc.want || !due.Equal(tc.due) {
				t.Fatalf("verdict = %v due %v; want %v due %v", v.status, due, tc.want, tc.due)
			}
		})
	}
}

// run starts h and stops it when the test ends.
func run(t *testing.T, h *NodeHealth) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

func createNodes(t *testing.T, s *store.Store, c *store.Cache, nodes ...*berthv1.Node) {
	t.Helper()
	var txn store.Txn
	for _, n := range nodes {
		txn.Create(store.NodeKey(n.Meta.Id), n)
	}
	rev, err := s.Commit(context.Background(), &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
}

// waitNode polls the cache until node id is as cond wants.
func waitNode(t *testing.T, c *store.Cache, id, what string, cond func(*berthv1.Node) bool) *berthv1.Node {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		n, _ := c.Node(id)
		if cond(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s is %v (%q), want %s", id, n.GetStatus(), n.GetStatusMessage(), what)
		}
		<-poll.C
	}
}

func waitStatus(t *testing.T, c *store.Cache, id string, want berthv1.NodeStatus) *berthv1.Node {
	t.Helper()
	return waitNode(t, c, id, want.String(), func(n *berthv1.Node) bool { return n.GetStatus() == want })
}

func TestUnreachableNodesGoDownAfterTheGrace(t *testing.T) {
	s := storetest.New(t)
	c := storetest.NewCache(t, s)
	now := time.Now()
	createNodes(t, s, c,
		&berthv1.Node{Meta: &berthv1.Meta{Id: "long-gone"}, Name: "long-gone", Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, StatusSince: timestamppb.New(now.Add(-time.Minute))},
		&berthv1.Node{Meta: &berthv1.Meta{Id: "just-lost"}, Name: "just-lost", Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, StatusSince: timestamppb.New(now)},
		&berthv1.Node{Meta: &berthv1.Meta{Id: "fine"}, Name: "fine", Status: berthv1.NodeStatus_NODE_STATUS_READY, StatusSince: timestamppb.New(now.Add(-time.Hour))},
	)
	const grace = 200 * time.Millisecond
	run(t, New(s, c, nil, slog.New(slog.DiscardHandler), grace))
	waitStatus(t, c, "long-gone", berthv1.NodeStatus_NODE_STATUS_DOWN)
	n := waitStatus(t, c, "just-lost", berthv1.NodeStatus_NODE_STATUS_DOWN)
	if n.GetStatusSince().AsTime().Sub(now) < grace {
		t.Fatalf("just-lost went down %v after it was lost, before the grace of %v", n.GetStatusSince().AsTime().Sub(now), grace)
	}
	if n, _ := c.Node("fine"); n.GetStatus() != berthv1.NodeStatus_NODE_STATUS_READY {
		t.Fatalf("a ready node became %v", n.GetStatus())
	}
}

// TestGossipFailureTakesANodeDown: with a grace far longer than the test,
// only gossip can take the node down, and its change wakes the verdicts.
func TestGossipFailureTakesANodeDown(t *testing.T) {
	s := storetest.New(t)
	c := storetest.NewCache(t, s)
	createNodes(t, s, c,
		&berthv1.Node{Meta: &berthv1.Meta{Id: "lost"}, Name: "lost", Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, StatusMessage: "agent disconnected", StatusSince: timestamppb.Now()},
		&berthv1.Node{Meta: &berthv1.Meta{Id: "flaky"}, Name: "flaky", Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, StatusMessage: "agent disconnected", StatusSince: timestamppb.Now()},
	)
	g := newFakeGossip()
	g.set("lost", gossip.State{Alive: true, Since: time.Now()})
	g.set("flaky", gossip.State{Alive: true, Since: time.Now()})
	run(t, New(s, c, g, slog.New(slog.DiscardHandler), time.Hour))

	waitNode(t, c, "flaky", "a message saying gossip sees it alive", func(n *berthv1.Node) bool {
		return strings.Contains(n.GetStatusMessage(), "alive")
	})
	g.set("lost", gossip.State{Since: time.Now()})
	n := waitStatus(t, c, "lost", berthv1.NodeStatus_NODE_STATUS_DOWN)
	if !strings.Contains(n.GetStatusMessage(), "gossip") {
		t.Fatalf("down node's message %q does not say gossip confirmed it", n.GetStatusMessage())
	}
	if n, _ := c.Node("flaky"); n.GetStatus() != berthv1.NodeStatus_NODE_STATUS_UNREACHABLE {
		t.Fatalf("a node gossip sees alive became %v", n.GetStatus())
	}
}
