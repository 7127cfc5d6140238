// Package clustermetrics reports the cluster as the store cache sees it:
// desired and running tasks per service, task failures and restarts per
// service, which server leads, and each node's allocatable and allocated
// CPU and memory. Gauges are read from the cache at scrape time; the
// counters follow the cache's events. Labels are bounded by what the
// cluster holds (namespace, app, service; node; server), never task ids.
package clustermetrics

import (
	"context"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
	"github.com/prometheus/client_golang/prometheus"
)

// Source is what the metrics read: the store cache.
type Source interface {
	Services(prefix string) []*berthv1.Service
	ServiceTasks(serviceID string) []*berthv1.Task
	Nodes() []*berthv1.Node
	Tasks() []*berthv1.Task
}

var _ Source = (*store.Cache)(nil)

var serviceLabels = []string{"namespace", "app", "service"}

var (
	desiredDesc = prometheus.NewDesc("berth_service_desired_tasks",
		"Tasks a service asks for: its replicas, or for a global service the nodes it is meant to run on.", serviceLabels, nil)
	runningDesc = prometheus.NewDesc("berth_service_running_tasks",
		"Tasks of a service that run and are meant to.", serviceLabels, nil)
	leaderDesc = prometheus.NewDesc("berth_leader",
		"1 on the server that leads the cluster (runs the orchestrator, scheduler and dispatcher), 0 on the others.", []string{"server"}, nil)
	cpuAllocatableDesc = prometheus.NewDesc("berth_node_allocatable_cpu_cores",
		"CPU a node offers to tasks, in cores.", []string{"node"}, nil)
	cpuAllocatedDesc = prometheus.NewDesc("berth_node_allocated_cpu_cores",
		"CPU the tasks placed on a node reserve, in cores.", []string{"node"}, nil)
	memoryAllocatableDesc = prometheus.NewDesc("berth_node_allocatable_memory_bytes",
		"Memory a node offers to tasks.", []string{"node"}, nil)
	memoryAllocatedDesc = prometheus.NewDesc("berth_node_allocated_memory_bytes",
		"Memory the tasks placed on a node reserve.", []string{"node"}, nil)
)

// Metrics is the cluster's metrics; register it (a prometheus.Collector)
// and run Follow for the counters.
type Metrics struct {
	source   Source
	serverID string
	leads    func() bool
	failures *prometheus.CounterVec
	restarts *prometheus.CounterVec
}

// New returns the metrics of the cluster source holds, reported by the
// server serverID, which leads while leads says so.
func New(source Source, serverID string, leads func() bool) *Metrics {
	return &Metrics{
		source: source, serverID: serverID, leads: leads,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_service_task_failures_total",
			Help: "Tasks of a service that failed (exited with an error or were unhealthy) or were rejected (could not start: no image, refused by a trust policy), since this server started.",
		}, serviceLabels),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_service_task_restarts_total",
			Help: "Tasks of a service started in place of one that ended while meant to run (the restart policy), since this server started.",
		}, serviceLabels),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{desiredDesc, runningDesc, leaderDesc, cpuAllocatableDesc, cpuAllocatedDesc, memoryAllocatableDesc, memoryAllocatedDesc} {
		ch <- d
	}
	m.failures.Describe(ch)
	m.restarts.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	leads := 0.0
	if m.leads() {
		leads = 1
	}
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, leads, m.serverID)
	for _, svc := range m.source.Services(store.ServicesPrefix) {
		desired, running := serviceCounts(svc, m.source.ServiceTasks(svc.GetMeta().GetId()))
		ch <- prometheus.MustNewConstMetric(desiredDesc, prometheus.GaugeValue, float64(desired), svc.Namespace, svc.App, svc.Name)
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(running), svc.Namespace, svc.App, svc.Name)
	}
	allocated := allocations(m.source.Tasks())
	for _, n := range m.source.Nodes() {
		a := allocated[n.GetMeta().GetId()]
		name := n.GetName()
		ch <- prometheus.MustNewConstMetric(cpuAllocatableDesc, prometheus.GaugeValue, float64(n.GetCapacity().GetMilliCpus())/1000, name)
		ch <- prometheus.MustNewConstMetric(cpuAllocatedDesc, prometheus.GaugeValue, float64(a.GetMilliCpus())/1000, name)
		ch <- prometheus.MustNewConstMetric(memoryAllocatableDesc, prometheus.GaugeValue, float64(n.GetCapacity().GetMemoryBytes()), name)
		ch <- prometheus.MustNewConstMetric(memoryAllocatedDesc, prometheus.GaugeValue, float64(a.GetMemoryBytes()), name)
	}
	m.failures.Collect(ch)
	m.restarts.Collect(ch)
}

// serviceCounts is what a service asks for and how many of its tasks
// run. A global service asks for one task on each node it is meant to run
// on, which are the nodes the orchestrator gave a task meant to run.
func serviceCounts(svc *berthv1.Service, tasks []*berthv1.Task) (desired, running int) {
	nodes := map[string]bool{}
	for _, t := range tasks {
		if t.GetDesiredState() != berthv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		if t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			running++
		}
		nodes[t.GetNodeId()] = true
	}
	if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		delete(nodes, "") // not placed yet: counted once placed
		return len(nodes), running
	}
	return int(svc.GetSpec().GetReplicas()), running
}

// allocations sums, per node id, what the tasks holding room there
// reserve: the scheduler's own rule of what holds room.
func allocations(tasks []*berthv1.Task) map[string]*berthv1.Resources {
	out := map[string]*berthv1.Resources{}
	for _, t := range tasks {
		if !scheduler.Holds(t) {
			continue
		}
		r := out[t.GetNodeId()]
		if r == nil {
			r = &berthv1.Resources{}
			out[t.GetNodeId()] = r
		}
		res := t.GetSpec().GetReservations()
		r.MilliCpus += max(res.GetMilliCpus(), 0)
		r.MemoryBytes += max(res.GetMemoryBytes(), 0)
	}
	return out
}

// Follow counts task failures and restarts from the cache's events until
// ctx ends.
func (m *Metrics) Follow(ctx context.Context, c *store.Cache) error {
	sub := c.Subscribe()
	defer c.Unsubscribe(sub)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Ready():
		}
		events, _ := sub.Drain() // lost events are lost counts, no more
		for _, ev := range events {
			m.Observe(ev)
		}
	}
}

// Observe counts one cache event: a task that turned failed, a task that
// replaces one that ended while meant to run; a service removed takes its
// series away.
func (m *Metrics) Observe(ev store.Event) {
	switch ev.Kind {
	case store.KindService:
		if svc, ok := ev.Object.(*berthv1.Service); ok && ev.Action == store.ActionDelete {
			m.failures.DeleteLabelValues(svc.Namespace, svc.App, svc.Name)
			m.restarts.DeleteLabelValues(svc.Namespace, svc.App, svc.Name)
		}
	case store.KindTask:
		t, ok := ev.Object.(*berthv1.Task)
		if !ok || ev.Action != store.ActionPut {
			return
		}
		old, _ := ev.Old.(*berthv1.Task)
		if old == nil && t.GetRestarts() > 0 {
			m.restarts.WithLabelValues(t.Namespace, t.App, t.Service).Inc()
		}
		if endedInFailure(t) && !endedInFailure(old) {
			m.failures.WithLabelValues(t.Namespace, t.App, t.Service).Inc()
		}
	}
}

// endedInFailure says t ended in failure: its container failed, or the node could
// not start it (rejected: no image, refused by a trust policy).
func endedInFailure(t *berthv1.Task) bool {
	s := t.GetStatus().GetState()
	return s == berthv1.TaskState_TASK_STATE_FAILED || s == berthv1.TaskState_TASK_STATE_REJECTED
}
