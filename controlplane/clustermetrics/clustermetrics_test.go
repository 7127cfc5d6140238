package clustermetrics

import (
	"fmt"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/internal/metrics/metricstest"
	"github.com/prometheus/client_golang/prometheus"
)

// cluster is a Source of fixed objects.
type cluster struct {
	services []*berthv1.Service
	tasks    []*berthv1.Task
	nodes    []*berthv1.Node
}

func (c *cluster) Services(string) []*berthv1.Service { return c.services }
func (c *cluster) Nodes() []*berthv1.Node             { return c.nodes }
func (c *cluster) Tasks() []*berthv1.Task             { return c.tasks }
func (c *cluster) ServiceTasks(id string) []*berthv1.Task {
	var out []*berthv1.Task
	for _, t := range c.tasks {
		if t.ServiceId == id {
			out = append(out, t)
		}
	}
	return out
}

func service(id, name string, mode berthv1.ServiceMode, replicas uint64) *berthv1.Service {
	return &berthv1.Service{Meta: &berthv1.Meta{Id: id}, Namespace: "default", App: "shop", Name: name,
		Spec: &berthv1.ServiceSpec{Mode: mode, Replicas: replicas}}
}

func task(service, node string, desired, state berthv1.TaskState, milliCPUs, memory int64) *berthv1.Task {
	return &berthv1.Task{Meta: &berthv1.Meta{Id: service + node + state.String()}, Namespace: "default", App: "shop", Service: service, ServiceId: service,
		NodeId: node, DesiredState: desired, Status: &berthv1.TaskStatus{State: state},
		Spec: &berthv1.ServiceSpec{Reservations: &berthv1.Resources{MilliCpus: milliCPUs, MemoryBytes: memory}}}
}

const (
	running  = berthv1.TaskState_TASK_STATE_RUNNING
	starting = berthv1.TaskState_TASK_STATE_STARTING
	pending  = berthv1.TaskState_TASK_STATE_PENDING
	failed   = berthv1.TaskState_TASK_STATE_FAILED
	shutdown = berthv1.TaskState_TASK_STATE_SHUTDOWN
)

func TestGaugesFromTheCache(t *testing.T) {
	c := &cluster{
		services: []*berthv1.Service{
			service("web", "web", berthv1.ServiceMode_SERVICE_MODE_REPLICATED, 3),
			service("agent", "agent", berthv1.ServiceMode_SERVICE_MODE_GLOBAL, 0),
		},
		nodes: []*berthv1.Node{
			{Meta: &berthv1.Meta{Id: "n1"}, Name: "alpha", Capacity: &berthv1.Resources{MilliCpus: 2000, MemoryBytes: 4 << 30}},
			{Meta: &berthv1.Meta{Id: "n2"}, Name: "beta", Capacity: &berthv1.Resources{MilliCpus: 1000, MemoryBytes: 1 << 30}},
		},
		tasks: []*berthv1.Task{
			task("web", "n1", running, running, 500, 100<<20),
			task("web", "n2", running, starting, 250, 0),
			task("web", "", running, pending, 250, 0),        // not placed: holds nothing
			task("web", "n1", shutdown, failed, 1000, 1<<30), // ended: holds nothing
			task("agent", "n1", running, running, 0, 50<<20),
			task("agent", "n2", running, failed, 0, 0), // its replacement is coming
		},
	}
	leads := true
	got := metricstest.Values(t, New(c, "s1", func() bool { return leads }))
	want := map[string]float64{
		`berth_leader{server="s1"}`: 1,
		`berth_service_desired_tasks{app="shop",namespace="default",service="web"}`:   3,
		`berth_service_running_tasks{app="shop",namespace="default",service="web"}`:   1,
		`berth_service_desired_tasks{app="shop",namespace="default",service="agent"}`: 2,
		`berth_service_running_tasks{app="shop",namespace="default",service="agent"}`: 1,
		`berth_node_allocatable_cpu_cores{node="alpha"}`:                              2,
		`berth_node_allocated_cpu_cores{node="alpha"}`:                                0.5,
		`berth_node_allocatable_memory_bytes{node="alpha"}`:                           4 << 30,
		`berth_node_allocated_memory_bytes{node="alpha"}`:                             150 << 20,
		`berth_node_allocatable_cpu_cores{node="beta"}`:                               1,
		`berth_node_allocated_cpu_cores{node="beta"}`:                                 0.25,
		`berth_node_allocated_memory_bytes{node="beta"}`:                              0,
	}
	for k, v := range want {
		if n, ok := got[k]; !ok || n != v {
			t.Errorf("%s = %v (reported: %v), want %v", k, n, ok, v)
		}
	}
	leads = false
	if got := metricstest.Values(t, New(c, "s1", func() bool { return leads }))[`berth_leader{server="s1"}`]; got != 0 {
		t.Errorf("berth_leader of a server that does not lead = %v, want 0", got)
	}
}

func TestCountersFollowTaskEvents(t *testing.T) {
	m := New(&cluster{}, "s1", func() bool { return false })
	first := task("web", "n1", running, running, 0, 0)
	failedTask := task("web", "n1", running, failed, 0, 0)
	replacement := task("web", "n1", running, pending, 0, 0)
	replacement.Restarts = 1
	put := func(old, obj *berthv1.Task) store.Event {
		ev := store.Event{Kind: store.KindTask, Action: store.ActionPut, Object: obj}
		if old != nil {
			ev.Old = old
		}
		return ev
	}
	for _, ev := range []store.Event{
		put(nil, first),                                    // a new task: nothing
		put(first, failedTask),                             // failed: one failure
		put(failedTask, failedTask),                        // written again while failed: not counted twice
		put(nil, replacement),                              // its replacement: one restart
		put(nil, task("web", "n1", running, failed, 0, 0)), // first seen failed: a failure
		put(nil, task("web", "n2", running, berthv1.TaskState_TASK_STATE_REJECTED, 0, 0)), // rejected: a failure
		{Kind: store.KindTask, Action: store.ActionDelete, Object: failedTask, Old: failedTask},
	} {
		m.Observe(ev)
	}
	got := metricstest.Values(t, m)
	const web = `{app="shop",namespace="default",service="web"}`
	if got["berth_service_task_failures_total"+web] != 3 || got["berth_service_task_restarts_total"+web] != 1 {
		t.Fatalf("failures %v, restarts %v; want 3 and 1", got["berth_service_task_failures_total"+web], got["berth_service_task_restarts_total"+web])
	}
	svc := service("web", "web", berthv1.ServiceMode_SERVICE_MODE_REPLICATED, 1)
	m.Observe(store.Event{Kind: store.KindService, Action: store.ActionDelete, Object: svc, Old: svc})
	got = metricstest.Values(t, m)
	if _, ok := got["berth_service_task_failures_total"+web]; ok {
		t.Errorf("the series of a removed service remain: %v", got)
	}
}

// BenchmarkCollect measures one scrape of a cluster of 1,000 services of
// 10 tasks each on 100 nodes.
func BenchmarkCollect(b *testing.B) {
	c := &cluster{}
	for n := range 100 {
		c.nodes = append(c.nodes, &berthv1.Node{Meta: &berthv1.Meta{Id: fmt.Sprint("n", n)}, Name: fmt.Sprint("node-", n),
			Capacity: &berthv1.Resources{MilliCpus: 8000, MemoryBytes: 32 << 30}})
	}
	byService := map[string][]*berthv1.Task{}
	for s := range 1000 {
		id := fmt.Sprint("s", s)
		c.services = append(c.services, service(id, id, berthv1.ServiceMode_SERVICE_MODE_REPLICATED, 10))
		for i := range 10 {
			t := task(id, fmt.Sprint("n", (s*10+i)%100), running, running, 100, 64<<20)
			t.Meta.Id = fmt.Sprint(id, ".", i)
			c.tasks = append(c.tasks, t)
			byService[id] = append(byService[id], t)
		}
	}
	src := &indexed{cluster: c, byService: byService}
	m := New(src, "s1", func() bool { return true })
	ch := make(chan prometheus.Metric, 4096)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.Collect(ch)
	}
	b.StopTimer()
	close(ch)
	<-done
}

// indexed is a cluster whose service tasks are indexed, as the cache's are.
type indexed struct {
	*cluster
	byService map[string][]*berthv1.Task
}

func (c *indexed) ServiceTasks(id string) []*berthv1.Task { return c.byService[id] }
