package scheduler

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/constraint"
)

// GlobalNodes are the nodes a global service of spec runs a task on: those
// not down nor drained whose labels meet its constraints. The orchestrator
// creates one slot per node of this list, and namespace quotas count a
// global service's tasks by it, so both agree on how many tasks it has.
// A spec whose constraints do not parse runs nowhere.
func GlobalNodes(spec *berthv1.ServiceSpec, nodes []*berthv1.Node) []*berthv1.Node {
	cs, err := constraint.ParseAll(spec.GetPlacement().GetConstraints())
	if err != nil {
		return nil
	}
	var out []*berthv1.Node
	for _, n := range nodes {
		if n.Status == berthv1.NodeStatus_NODE_STATUS_DOWN || n.Availability == berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN {
			continue
		}
		ok := true
		for _, c := range cs {
			ok = ok && c.Match(n)
		}
		if ok {
			out = append(out, n)
		}
	}
	return out
}
