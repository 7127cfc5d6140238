package dispatcher

import (
	"context"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
)

// TestSessionRefusesAgentsTooFarApart: an agent one minor version from
// the server gets its session; one two minors away is refused with
// FailedPrecondition naming both versions and what to upgrade, and its
// node is not marked ready.
func TestSessionRefusesAgentsTooFarApart(t *testing.T) {
	ctx := context.Background()
	f := newJoinFixture(t)
	f.d.cfg.Version = "v1.4.2"
	term, endTerm := context.WithCancel(ctx)
	defer endTerm()
	f.d.startTerm(term)
	defer f.d.endTerm()

	for _, tc := range []struct {
		name, agent string
		code        codes.Code
		says        []string
	}{
		{"older", "v1.2.0", codes.FailedPrecondition, []string{"agent v1.2.0", "server v1.4.2", "upgrade the agent to v1.4"}},
		{"newer", "v1.6.1", codes.FailedPrecondition, []string{"agent v1.6.1", "server v1.4.2", "upgrade the server to v1.6"}},
		{"major", "v2.4.2", codes.FailedPrecondition, []string{"agent v2.4.2", "server v1.4.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, cert, err := f.join(t, f.token, "skew-"+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			// A session taken would run until its context ends: bounded,
			// so a missing refusal fails instead of hanging.
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			err = f.session(sctx, cert, &berthv1.NodeDescription{Name: "skew-" + tc.name, AgentVersion: tc.agent})
			wantCode(t, "a session of agent "+tc.agent, err, tc.code, tc.says...)
			n := &berthv1.Node{}
			if err := f.s.Get(ctx, store.NodeKey(id), n); err != nil {
				t.Fatal(err)
			}
			if n.Status == berthv1.NodeStatus_NODE_STATUS_READY || n.AgentVersion != "" {
				t.Fatalf("refused node stored as %v with version %q, want it not ready and its version unrecorded", n.Status, n.AgentVersion)
			}
		})
	}

	// One minor apart: the session is taken and the node records the
	// agent's version.
	id, cert, err := f.join(t, f.token, "skew-ok")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- f.session(sctx, cert, &berthv1.NodeDescription{Name: "skew-ok", AgentVersion: "v1.3.9"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !f.d.connected(id) {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("the session of an agent one minor apart ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("the session of an agent one minor apart was not taken within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := &berthv1.Node{}
	if err := f.s.Get(ctx, store.NodeKey(id), n); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if n.AgentVersion != "v1.3.9" {
		t.Fatalf("node's agent version = %q, want v1.3.9", n.AgentVersion)
	}
}
