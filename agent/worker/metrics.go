package worker

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// workerMetrics measure the node's task starts. They exist from New on,
// so runners observe them whether or not anyone registered them.
type workerMetrics struct {
	start prometheus.Histogram
	pull  prometheus.Histogram
	// pullFailures counts fetches that failed, by the registry of the
	// image's name.
	pullFailures *prometheus.CounterVec
}

func newWorkerMetrics() workerMetrics {
	return workerMetrics{
		start: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_container_start_seconds",
			Help: "Time from a task's preparing to its running on this node: image fetch, container creation and start.",
			// From a container start on a warm node (tens of
			// milliseconds) to a large image's pull.
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		pull: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "berth_image_pull_seconds",
			Help:    "Time this node took to fetch an image it lacked (from a peer or a registry), for pulls that succeeded.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		pullFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_image_pull_failures_total",
			Help: "Image fetches on this node that failed (not found, refused credentials, unreachable registry or peer, bad signature), by the registry host of the image's name.",
		}, []string{"registry"}),
	}
}

// pullFailed counts a failed fetch of image.
func (m workerMetrics) pullFailed(image string) {
	registry := "unknown"
	if ref, err := imageref.Parse(image); err == nil {
		registry = ref.Host()
	}
	m.pullFailures.WithLabelValues(registry).Inc()
}

// Collectors are the worker's metrics: container start and image pull
// times, and the node's tasks by observed state (berth_node_tasks, apart
// from the servers' berth_tasks so that sums over both never count a task
// twice).
func (w *Worker) Collectors() []prometheus.Collector {
	tasks := metrics.NewTaskCounts("berth_node_tasks", "Tasks this node's agent knows, by the state it last reported.",
		func() map[berthv1.TaskState]int {
			w.mu.Lock()
			defer w.mu.Unlock()
			counts := map[berthv1.TaskState]int{}
			for _, st := range w.statuses {
				counts[st.GetState()]++
			}
			return counts
		})
	waiting := func(name, help string, s func() *slots) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			w.mu.Lock()
			sl := s()
			w.mu.Unlock()
			_, n := sl.load()
			return float64(n)
		})
	}
	return []prometheus.Collector{w.metrics.start, w.metrics.pull, w.metrics.pullFailures, tasks,
		waiting("berth_node_start_waiting", "Tasks waiting for one of this node's container start slots (--max-concurrent-starts).", func() *slots { return w.starts }),
		waiting("berth_node_pull_waiting", "Tasks waiting for one of this node's image pull slots (--max-concurrent-pulls).", func() *slots { return w.pulls }),
	}
}

// observeStart records a start that reached running, when the runner saw
// it from preparing on.
func (r *runner) observeStart() {
	if !r.preparing.IsZero() {
		r.w.metrics.start.Observe(time.Since(r.preparing).Seconds())
		r.preparing = time.Time{}
	}
}
