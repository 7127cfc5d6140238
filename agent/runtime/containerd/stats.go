package containerd

import (
	"context"
	"fmt"
	"strconv"
	"time"

	cgroup1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroup2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/protobuf/proto"

	"github.com/berthproject/berth/agent/runtime"
)

// noMemoryLimit is where cgroup limits start to mean "none": cgroup v1
// shows an unlimited container a limit near 2^63, v2 "max" as 2^64-1.
const noMemoryLimit = 1 << 62

// Stats reads the cgroup statistics of the running containers among ids
// that this runtime owns, with one metrics call to containerd's shims.
func (c *Runtime) Stats(ctx context.Context, ids []string) ([]runtime.ContainerStats, error) {
	ctx = c.ctx(ctx)
	all, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var filters []string
	for _, st := range all {
		if st.State == runtime.StateRunning && (len(ids) == 0 || want[st.ID]) {
			filters = append(filters, "id=="+strconv.Quote(st.ID)) // OR'ed
		}
	}
	if len(filters) == 0 {
		return nil, nil // no filter would ask for every task in the namespace
	}
	resp, err := c.client.TaskService().Metrics(ctx, &tasksapi.MetricsRequest{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("runtime: read container metrics: %w", errgrpc.ToNative(err))
	}
	traffic, _ := c.cfg.Network.(runtime.NetworkTraffic)
	out := make([]runtime.ContainerStats, 0, len(resp.Metrics))
	for _, m := range resp.Metrics {
		s, ok := statsOf(m)
		if !ok {
			continue
		}
		if traffic != nil {
			// A container without a namespace of its own (or one
			// going away) has no counters to show: zero.
			s.NetworkRxBytes, s.NetworkTxBytes, _ = traffic.Traffic(s.ID)
		}
		out = append(out, s)
	}
	return out, nil
}

// statsOf decodes one task's cgroup metrics (v1 or v2); false when they
// are of a kind it does not know.
func statsOf(m *types.Metric) (runtime.ContainerStats, bool) {
	s := runtime.ContainerStats{ID: m.ID, At: time.Now()}
	if m.Timestamp != nil {
		s.At = m.Timestamp.AsTime()
	}
	data := m.GetData()
	var limit uint64
	switch data.GetTypeUrl() {
	case cgroup1MetricsType:
		var v cgroup1stats.Metrics
		if proto.Unmarshal(data.GetValue(), &v) != nil {
			return s, false
		}
		s.CPUUsageNanos = v.GetCPU().GetUsage().GetTotal()
		mem := v.GetMemory()
		s.MemoryBytes = usedMemory(mem.GetUsage().GetUsage(), mem.GetTotalInactiveFile())
		limit = mem.GetUsage().GetLimit()
		if h := mem.GetHierarchicalMemoryLimit(); h != 0 && h < limit {
			limit = h
		}
		s.Pids = uint32(v.GetPids().GetCurrent())
	case cgroup2MetricsType:
		var v cgroup2stats.Metrics
		if proto.Unmarshal(data.GetValue(), &v) != nil {
			return s, false
		}
		s.CPUUsageNanos = v.GetCPU().GetUsageUsec() * 1000
		mem := v.GetMemory()
		s.MemoryBytes = usedMemory(mem.GetUsage(), mem.GetInactiveFile())
		limit = mem.GetUsageLimit()
		s.Pids = uint32(v.GetPids().GetCurrent())
	default:
		return s, false
	}
	if limit < noMemoryLimit {
		s.MemoryLimitBytes = limit
	}
	return s, true
}

// usedMemory is usage without the inactive page cache, which the kernel
// drops first under pressure: what the container really holds.
func usedMemory(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return usage
	}
	return usage - inactiveFile
}
