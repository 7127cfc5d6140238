package orchestrator

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics measures placement. A server makes one and hands it to every
// orchestrator it runs, one per term as leader, so the series go on across
// terms.
type Metrics struct {
	latency    prometheus.Histogram
	placements prometheus.Counter
}

// NewMetrics returns unregistered placement metrics; register them (they
// are a prometheus.Collector) with the process's registry.
func NewMetrics() *Metrics {
	return &Metrics{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_scheduling_latency_seconds",
			Help: "Time from a task's creation (pending) to its assignment to a node, waits for a fitting node or for dependencies included.",
			// From one orchestrator pass (milliseconds) to tasks that
			// waited minutes for room.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20),
		}),
		placements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_placements_total",
			Help: "Tasks assigned to a node.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.latency.Describe(ch)
	m.placements.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.latency.Collect(ch)
	m.placements.Collect(ch)
}

// Option configures an Orchestrator.
type Option func(*Orchestrator)

// WithMetrics makes the orchestrator count its placements in m.
func WithMetrics(m *Metrics) Option { return func(o *Orchestrator) { o.metrics = m } }

// placed records the assignments of a pass once its writes committed: a
// pass that failed places its tasks again on the next one, and only then
// do they count.
func (m *Metrics) placed(tasks []*berthv1.Task, now time.Time) {
	if m == nil {
		return
	}
	for _, t := range tasks {
		m.latency.Observe(max(now.Sub(t.GetMeta().GetCreatedAt().AsTime()), 0).Seconds())
	}
	m.placements.Add(float64(len(tasks)))
}
