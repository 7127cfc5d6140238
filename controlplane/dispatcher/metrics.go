package dispatcher

import (
	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Collectors are the dispatcher's metrics: the agent sessions it holds,
// and the cluster's tasks by observed state. Both are read when
// Prometheus scrapes. Every server reports the tasks of the whole cluster
// from its cache: scrape one server, or take max() across them.
func (d *Dispatcher) Collectors() []prometheus.Collector {
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "berth_agent_sessions",
		Help: "Agents connected to this server by a session stream.",
	}, func() float64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		return float64(len(d.sessions))
	})
	tasks := metrics.NewTaskCounts("berth_tasks", "Tasks in the cluster by observed state, finished ones the history keeps included.",
		d.cfg.Cache.TaskStates)
	return []prometheus.Collector{sessions, tasks}
}
