package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/metrics/metricstest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestContainerMetricsOfRunningTasks(t *testing.T) {
	samples := []runtime.ContainerStats{
		{ID: "t1", CPUUsageNanos: 1.5e9, MemoryBytes: 10 << 20, MemoryLimitBytes: 64 << 20, NetworkRxBytes: 700, NetworkTxBytes: 300},
		{ID: "t2", MemoryBytes: 1 << 20},     // no limit
		{ID: "stray", MemoryBytes: 99 << 20}, // a container the worker does not run
	}
	tasks := map[string]*berthv1.Task{
		"t1": {Namespace: "default", App: "shop", Service: "web", Slot: 2},
		"t2": {Namespace: "team", App: "shop", Service: "agent"},
	}
	m := containerMetrics{
		stats: func(context.Context) ([]runtime.ContainerStats, error) { return samples, nil },
		tasks: func() map[string]*berthv1.Task { return tasks },
	}
	got := metricstest.Values(t, m)
	const t1 = `{app="shop",namespace="default",service="web",slot="2",task="t1"}`
	const t2 = `{app="shop",namespace="team",service="agent",slot="0",task="t2"}`
	want := map[string]float64{
		"berth_container_cpu_seconds_total" + t1:            1.5,
		"berth_container_memory_working_set_bytes" + t1:     10 << 20,
		"berth_container_memory_limit_bytes" + t1:           64 << 20,
		"berth_container_network_receive_bytes_total" + t1:  700,
		"berth_container_network_transmit_bytes_total" + t1: 300,
		"berth_container_memory_working_set_bytes" + t2:     1 << 20,
		"berth_container_network_receive_bytes_total" + t2:  0,
	}
	for k, v := range want {
		if n, ok := got[k]; !ok || n != v {
			t.Errorf("%s = %v (reported: %v), want %v", k, n, ok, v)
		}
	}
	if len(got) != 9 {
		t.Errorf("got %d series, want 9 (no limit for t2, nothing for the stray container): %v", len(got), got)
	}

	// A task that ended takes its series with it.
	delete(tasks, "t1")
	if got := metricstest.Values(t, m); len(got) != 4 {
		t.Errorf("after t1 ended: %d series, want t2's 4: %v", len(got), got)
	}
}

func TestContainerMetricsWhenTheRuntimeFails(t *testing.T) {
	m := containerMetrics{
		stats: func(context.Context) ([]runtime.ContainerStats, error) { return nil, errors.New("containerd is gone") },
		tasks: func() map[string]*berthv1.Task { return nil },
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	if _, err := reg.Gather(); err == nil {
		t.Fatal("gathering while the runtime fails reported no error")
	}
}
