package dispatcher

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// TestHeartbeatWritesOnlyChanges: heartbeats that change nothing write
// nothing; one that says the images changed writes the node once.
func TestHeartbeatWritesOnlyChanges(t *testing.T) {
	s, c := newStoreAndCache(t)
	pool, err := NewSubnetPool("10.42.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Store: s, Cache: c, Subnets: pool, Log: slog.New(slog.DiscardHandler)})
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
