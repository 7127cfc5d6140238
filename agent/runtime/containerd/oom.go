package containerd

import (
	"context"
	"strconv"
	"time"

	cgroup1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroup2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/protobuf/proto"
)

// oomLookupTimeout bounds the one call that asks whether exited
// containers were killed for memory, so a stuck shim cannot hold an exit
// report back.
const oomLookupTimeout = 5 * time.Second

// Type URLs of the cgroup statistics that a task's metrics carry.
const (
	cgroup1MetricsType = "io.containerd.cgroups.v1.Metrics"
	cgroup2MetricsType = "io.containerd.cgroups.v2.Metrics"
)

// oomKilled returns the ids among ids whose containers had a process
// killed by the kernel's out-of-memory killer during their current task
// (run).
//
// It reads the OOM kill counter of each container's memory cgroup through
// the shim's metrics (memory.oom_control "oom_kill" on cgroup v1,
// memory.events "oom_kill" on v2), rather than containerd's /tasks/oom
// event, because:
//   - the kernel counts the kill before it sends SIGKILL, so the counter is
//     already set when the exit can be observed: there is no race between
//     an OOM event and the exit event to settle with a wait;
//   - the counter lives as long as the cgroup, which the shim keeps until
//     the task is deleted, so an agent that restarted after the kill (and
//     missed any event: events are not replayed) still tells it;
//   - the shim reads the cgroup the container really runs in, whatever
//     the cgroup driver and mount layout.
//
// The counter is gone once the task is deleted (Remove, or Start of a
// stopped container), so it must be read before. The lookup is best
// effort: when it fails, no container is reported killed and the exit
// still says its code.
func (c *Runtime) oomKilled(ctx context.Context, ids ...string) map[string]bool {
	if len(ids) == 0 {
		return nil // no filter would ask for every task in the namespace
	}
	ctx, cancel := context.WithTimeout(ctx, oomLookupTimeout)
	defer cancel()
	filters := make([]string, len(ids))
	for i, id := range ids {
		filters[i] = "id==" + strconv.Quote(id) // filters are OR'ed
	}
	resp, err := c.client.TaskService().Metrics(ctx, &tasksapi.MetricsRequest{Filters: filters})
	if err != nil {
		return nil
	}
	out := make(map[string]bool, len(resp.Metrics))
	for _, m := range resp.Metrics {
		if oomKills(m) > 0 {
			out[m.ID] = true
		}
	}
	return out
}

// oomKills returns the OOM kill counter in one task's metrics; 0 when they
// hold none.
func oomKills(m *types.Metric) uint64 {
	data := m.GetData()
	switch data.GetTypeUrl() {
	case cgroup1MetricsType:
		var s cgroup1stats.Metrics
		if proto.Unmarshal(data.GetValue(), &s) != nil {
			return 0
		}
		return s.GetMemoryOomControl().GetOomKill()
	case cgroup2MetricsType:
		var s cgroup2stats.Metrics
		if proto.Unmarshal(data.GetValue(), &s) != nil {
			return 0
		}
		return s.GetMemoryEvents().GetOomKill()
	default:
		return 0
	}
}
