package orchestrator

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestFailureBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, 256 * time.Second}, {10, failureBackoffMax}, {1000, failureBackoffMax}} {
		if got := failureBackoff(tc.n); got != tc.want {
			t.Errorf("failureBackoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

// waitEvent polls the event history for an event whose message holds
// text, and returns it.
func (h *harness) waitEvent(text string) *berthv1.Event {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := h.store.FlushEvents(ctx); err != nil {
			h.t.Fatal(err)
		}
		evs, err := h.store.Events(ctx, time.Time{}, 100, func(ev *berthv1.Event) bool { return strings.Contains(ev.Message, text) })
		if err != nil {
			h.t.Fatal(err)
		}
		if len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no event says %q", text)
		}
		<-tick.C
	}
}

// TestReconcilePanicSetsTheServiceAside: a service whose reconcile panics
// gets an event and a backoff; the leader keeps running, other services
// are reconciled, and the service is tried again after the backoff.
func TestReconcilePanicSetsTheServiceAside(t *testing.T) {
	var panicking atomic.Bool
	panicking.Store(true)
	h := newHarness(t, func(o *Orchestrator) {
		o.beforeReconcile = func(svc *berthv1.Service) {
			if svc.Name == "bad" && panicking.Load() {
				panic("boom")
			}
		}
	})
	h.putNode(readyNode("n1", nil))
	bad := h.putService(newService("bad", 2))
	good := h.putService(newService("good", 3))
	h.waitFor("3 assigned tasks of the good service", func() bool {
		ts := h.tasks(good)
		return len(ts) == 3 && every(ts, assigned)
	})
	ev := h.waitEvent("reconcile of service bad failed: boom")
	if ev.Attributes["service"] != "bad" || !strings.Contains(ev.Message, "trying again in 1s") {
		t.Errorf("event %v", ev)
	}
	if n := len(h.tasks(bad)); n != 0 {
		t.Fatalf("a service whose reconcile panicked has %d tasks:\n%s", n, h.dump())
	}
	// Others keep being reconciled while it is set aside.
	good = h.changeService(good, func(s *berthv1.Service) { s.Spec.Replicas = 4 })
	h.waitFor("the good service scaled up", func() bool { return len(h.tasks(good)) == 4 })

	panicking.Store(false)
	h.waitFor("the bad service reconciled after its backoff", func() bool {
		ts := h.tasks(bad)
		return len(ts) == 2 && every(ts, assigned)
	})
}

// TestReplicasOverTheCapAreNotReconciled: a service stored with more
// replicas than the cap (before the cap, or written around the API) is
// set aside with an event instead of exhausting the leader's memory.
func TestReplicasOverTheCapAreNotReconciled(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	huge := h.putService(newService("huge", 100000000000))
	good := h.putService(newService("good", 2))
	h.waitFor("2 assigned tasks of the good service", func() bool {
		ts := h.tasks(good)
		return len(ts) == 2 && every(ts, assigned)
	})
	h.waitEvent("reconcile of service huge failed: it asks for 100000000000 replicas, over the cluster's cap of 10000")
	if n := len(h.tasks(huge)); n != 0 {
		t.Fatalf("the huge service has %d tasks", n)
	}
	huge = h.changeService(huge, func(s *berthv1.Service) { s.Spec.Replicas = 1 })
	h.waitFor("the huge service scaled down and reconciled", func() bool { return len(h.tasks(huge)) == 1 })
}
