package agent

import (
	"context"
	"strconv"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// containerScrapeTimeout bounds the runtime's stats call of one scrape.
const containerScrapeTimeout = 10 * time.Second

var containerLabels = []string{"namespace", "app", "service", "slot", "task"}

var (
	containerCPUDesc = prometheus.NewDesc("berth_container_cpu_seconds_total",
		"CPU time a task's container used, in seconds.", containerLabels, nil)
	containerMemoryDesc = prometheus.NewDesc("berth_container_memory_working_set_bytes",
		"Memory a task's container holds, without the page cache the kernel can take back at once.", containerLabels, nil)
	containerMemoryLimitDesc = prometheus.NewDesc("berth_container_memory_limit_bytes",
		"Memory limit of a task's container; absent when it has none.", containerLabels, nil)
	containerRxDesc = prometheus.NewDesc("berth_container_network_receive_bytes_total",
		"Bytes a task's container received on its network interfaces (loopback aside).", containerLabels, nil)
	containerTxDesc = prometheus.NewDesc("berth_container_network_transmit_bytes_total",
		"Bytes a task's container sent on its network interfaces (loopback aside).", containerLabels, nil)
)

// containerMetrics reports the resource use of the node's running tasks,
// read from the runtime when Prometheus scrapes: a series per running
// task, gone with the task.
type containerMetrics struct {
	stats func(ctx context.Context) ([]runtime.ContainerStats, error)
	tasks func() map[string]*berthv1.Task
}

// Describe implements prometheus.Collector.
func (m containerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{containerCPUDesc, containerMemoryDesc, containerMemoryLimitDesc, containerRxDesc, containerTxDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A runtime that does not
// answer makes the series missing, and the scrape logs why.
func (m containerMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), containerScrapeTimeout)
	defer cancel()
	samples, err := m.stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(containerCPUDesc, err)
		return
	}
	tasks := m.tasks()
	for _, s := range samples {
		t, ok := tasks[s.ID]
		if !ok {
			continue // not (or no longer) a task of this node
		}
		labels := []string{t.GetNamespace(), t.GetApp(), t.GetService(), strconv.FormatUint(t.GetSlot(), 10), s.ID}
		ch <- prometheus.MustNewConstMetric(containerCPUDesc, prometheus.CounterValue, float64(s.CPUUsageNanos)/1e9, labels...)
		ch <- prometheus.MustNewConstMetric(containerMemoryDesc, prometheus.GaugeValue, float64(s.MemoryBytes), labels...)
		if s.MemoryLimitBytes > 0 {
			ch <- prometheus.MustNewConstMetric(containerMemoryLimitDesc, prometheus.GaugeValue, float64(s.MemoryLimitBytes), labels...)
		}
		ch <- prometheus.MustNewConstMetric(containerRxDesc, prometheus.CounterValue, float64(s.NetworkRxBytes), labels...)
		ch <- prometheus.MustNewConstMetric(containerTxDesc, prometheus.CounterValue, float64(s.NetworkTxBytes), labels...)
	}
}
