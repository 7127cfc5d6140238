package orchestrator

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/metrics/metricstest"
)

func TestPlacementsAreCountedOnceCommitted(t *testing.T) {
	m := NewMetrics()
	h := newHarness(t, WithMetrics(m))
	// The first task waits for a node, the next two find one at once.
	svc := h.putService(newService("web", 1))
	h.waitFor("a task waiting for a node", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 1 && ts[0].GetStatus().GetMessage() != ""
	})
	if got := metricstest.Values(t, m)["berth_placements_total"]; got != 0 {
		t.Fatalf("berth_placements_total = %v before any node, want 0", got)
	}
	h.putNode(readyNode("n1", nil))
	h.changeService(svc, func(s *berthv1.Service) { s.Spec.Replicas = 3 })
	h.waitFor("3 assigned tasks", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 3 && every(ts, assigned)
	})
	// The pass records its placements after its commit, which the cache
	// may show first.
	want := map[string]float64{"berth_placements_total": 3, "berth_scheduling_latency_seconds_count": 3}
	deadline := time.Now().Add(waitTimeout)
	for {
		got := metricstest.Values(t, m)
		if got["berth_placements_total"] == want["berth_placements_total"] &&
			got["berth_scheduling_latency_seconds_count"] == want["berth_scheduling_latency_seconds_count"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics = %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
