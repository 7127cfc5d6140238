package dispatcher

import (
	"context"
	"log/slog"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
)

// waitDone waits for ctx to end, or fails the test after a deadline.
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the session is still open", what)
	}
}

func TestSilentSessionIsClosed(t *testing.T) {
	d := New(Config{HeartbeatPeriod: 10 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newSession("n1", context.Background(), cancel)
	s.heard()
	done := make(chan struct{})
	go func() { d.watch(ctx, s, "node-1"); close(done) }()
	waitDone(t, ctx, "an agent silent for three heartbeats")
	<-done
	if !s.silent.Load() {
		t.Fatalf("the session was closed but not marked silent")
	}
}

func TestDownNodeLosesItsSession(t *testing.T) {
	ready := &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Name: "node-1", Status: berthv1.NodeStatus_NODE_STATUS_READY}
	down := &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Name: "node-1", Status: berthv1.NodeStatus_NODE_STATUS_DOWN}
	for _, tc := range []struct {
		name   string
		ev     store.Event
		closed bool
	}{
		{"ready to down", store.Event{Kind: store.KindNode, Object: down, Old: ready}, true},
		{"down again", store.Event{Kind: store.KindNode, Object: down, Old: down}, false},
		{"ready", store.Event{Kind: store.KindNode, Object: ready, Old: down}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Config{Log: slog.New(slog.DiscardHandler)})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			d.sessions["n1"] = newSession("n1", context.Background(), cancel)
			d.nodeChanged(tc.ev)
			if closed := ctx.Err() != nil; closed != tc.closed {
				t.Fatalf("session closed = %v, want %v", closed, tc.closed)
			}
		})
	}
}

func TestOnlyReadyNodesBecomeUnreachable(t *testing.T) {
	s, c := newStoreAndCache(t)
	ctx := context.Background()
	var txn store.Txn
	for id, st := range map[string]berthv1.NodeStatus{"ready": berthv1.NodeStatus_NODE_STATUS_READY, "down": berthv1.NodeStatus_NODE_STATUS_DOWN} {
		txn.Create(store.NodeKey(id), &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: id, Status: st, StatusMessage: "as set"})
	}
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	d := New(Config{Store: s, Cache: c, Log: slog.New(slog.DiscardHandler)})
	for _, id := range []string{"ready", "down"} {
		if err := d.markUnreachable(ctx, "the agent closed its session", berthv1.ContactLoss_CONTACT_LOSS_CLOSED, map[string]time.Time{id: {}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitRevision(ctx, rev+1); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]berthv1.NodeStatus{"ready": berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, "down": berthv1.NodeStatus_NODE_STATUS_DOWN} {
		n := &berthv1.Node{}
		if err := s.Get(ctx, store.NodeKey(id), n); err != nil {
			t.Fatal(err)
		}
		if n.Status != want {
			t.Errorf("node %s is %v after losing its session, want %v", id, n.Status, want)
		}
	}
}
