package dispatcher

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// newHeartbeatDispatcher is a dispatcher over a fresh store, for the
// heartbeat tests.
func newHeartbeatDispatcher(t *testing.T) (*store.Store, *store.Cache, *Dispatcher) {
	t.Helper()
	s, c := newStoreAndCache(t)
	pool, err := NewSubnetPool("10.42.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	return s, c, New(Config{Store: s, Cache: c, Subnets: pool, Log: slog.New(slog.DiscardHandler)})
}

// TestHeartbeatWritesOnlyChanges: heartbeats that change nothing write
// nothing; one that says the images changed writes the node once.
func TestHeartbeatWritesOnlyChanges(t *testing.T) {
	s, c, d := newHeartbeatDispatcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, _, err := d.register(ctx, "n1", joined(t, s, c, "n1", "alpha", nil), &berthv1.NodeDescription{Name: "alpha"}); err != nil {
		t.Fatal(err)
	}
	before := c.Revision()
	registered, _ := c.Node("n1")

	for range 50 {
		d.beats.heartbeat("n1", &berthv1.AgentHeartbeat{})
	}
	if p := d.beats.take(); len(p) != 0 {
		t.Fatalf("idle heartbeats left %d nodes to write, want none", len(p))
	}
	select {
	case <-d.beats.changed:
		t.Fatal("idle heartbeats woke the writer")
	default:
	}

	done := make(chan struct{})
	go func() { defer close(done); d.writeHeartbeats(ctx) }()
	defer func() { cancel(); <-done }()
	for range 50 {
		d.beats.heartbeat("n1", &berthv1.AgentHeartbeat{})
	}
	images := []string{"docker.io/library/busybox:latest"}
	d.beats.heartbeat("n1", &berthv1.AgentHeartbeat{ImagesChanged: true, Images: images,
		ImageDigests: map[string]string{images[0]: "sha256:b"}})

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	for {
		if n, _ := c.Node("n1"); slices.Equal(n.Images, images) {
			break
		}
		if err := c.WaitRevision(wctx, c.Revision()+1); err != nil {
			t.Fatalf("the node's new images were not written: %v", err)
		}
	}
	if got := c.Revision() - before; got != 1 {
		t.Errorf("50 idle heartbeats and one image change wrote %d revisions, want 1", got)
	}
	n, _ := c.Node("n1")
	if n.ImageDigests[images[0]] != "sha256:b" {
		t.Errorf("digests = %v, want the agent's", n.ImageDigests)
	}
	if !n.LastHeartbeat.AsTime().After(registered.LastHeartbeat.AsTime()) {
		t.Errorf("last heartbeat %v not moved past registration's %v by the write", n.LastHeartbeat.AsTime(), registered.LastHeartbeat.AsTime())
	}
}

// TestHeartbeatWritesChangedConditions: a heartbeat whose conditions
// changed writes them at once, keeps the since of a condition whose
// verdict did not change, and records that the node is not ready, then
// ready again.
func TestHeartbeatWritesChangedConditions(t *testing.T) {
	s, c, d := newHeartbeatDispatcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := timestamppb.New(time.Now().Add(-time.Hour))
	runtimeOK := &berthv1.NodeCondition{Type: nodestate.Runtime, Ok: true, Since: start}
	if _, _, err := d.register(ctx, "n1", joined(t, s, c, "n1", "alpha", nil), &berthv1.NodeDescription{Name: "alpha",
		Conditions: []*berthv1.NodeCondition{runtimeOK, {Type: nodestate.Disk, Ok: true, Since: start}}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); d.writeHeartbeats(ctx) }()
	defer func() { cancel(); <-done }()

	waitNode := func(what string, ok func(*berthv1.Node) bool) *berthv1.Node {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		for {
			if n, _ := c.Node("n1"); ok(n) {
				return n
			}
			if err := c.WaitRevision(wctx, c.Revision()+1); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	later := timestamppb.Now()
	d.beats.heartbeat("n1", &berthv1.AgentHeartbeat{ConditionsChanged: true, Conditions: []*berthv1.NodeCondition{
		{Type: nodestate.Runtime, Ok: true, Since: later},
		{Type: nodestate.Disk, Message: "12 MiB free", Since: later},
	}})
	n := waitNode("the failing disk was not written", func(n *berthv1.Node) bool { return !nodestate.Ready(n) })
	if got := nodestate.Words(n); got != "not ready (disk: 12 MiB free)" {
		t.Errorf("words = %q", got)
	}
	for _, cond := range n.Conditions {
		if cond.Type == nodestate.Runtime && !cond.Since.AsTime().Equal(start.AsTime()) {
			t.Errorf("runtime's since moved to %v though it stayed ok since %v", cond.Since.AsTime(), start.AsTime())
		}
	}

	d.beats.heartbeat("n1", &berthv1.AgentHeartbeat{ConditionsChanged: true, Conditions: []*berthv1.NodeCondition{
		{Type: nodestate.Runtime, Ok: true, Since: later}, {Type: nodestate.Disk, Ok: true, Since: timestamppb.Now()},
	}})
	waitNode("the disk's recovery was not written", nodestate.Ready)

	var actions []string
	ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
	defer ecancel()
	for ectx.Err() == nil {
		evs, err := s.Events(ctx, time.Time{}, 100, func(ev *berthv1.Event) bool { return ev.Kind == "node" })
		if err != nil {
			t.Fatal(err)
		}
		actions = actions[:0]
		for _, ev := range evs {
			actions = append(actions, ev.Action)
		}
		if slices.Contains(actions, "not-ready") && slices.Contains(actions, "ready") {
			return
		}
		if err := c.WaitRevision(ectx, c.Revision()+1); err != nil {
			break
		}
	}
	t.Fatalf("node events %v, want not-ready and ready", actions)
}
