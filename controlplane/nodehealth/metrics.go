package nodehealth

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector reports berth_nodes{status}: the nodes c holds by the
// verdict they carry, counted when Prometheus scrapes. Every server has
// the cache, so every server reports it, leader or not.
func Collector(c *store.Cache) prometheus.Collector {
	var all []string
	for n := range berthv1.NodeStatus_name {
		if s := berthv1.NodeStatus(n); s != berthv1.NodeStatus_NODE_STATUS_UNSPECIFIED {
			all = append(all, statusName(s))
		}
	}
	return metrics.NewCounts("berth_nodes", "Nodes of the cluster by status (ready, unreachable, down).", "status", all,
		func() map[string]int {
			counts := map[string]int{}
			for _, n := range c.Nodes() {
				counts[statusName(n.Status)]++
			}
			return counts
		})
}
