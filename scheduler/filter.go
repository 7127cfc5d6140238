package scheduler

import (
	"fmt"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/constraint"
	"github.com/berthproject/berth/api/nodestate"
)

// filter rules out nodes that cannot run a task. A filter value carries
// what it checks (the constraint, the amount of memory, the port), so one
// pipeline serves every task of a group.
type filter interface {
	// applies reports whether the filter has anything to check; filters
	// that do not apply stay out of the pipeline, so they cost nothing.
	applies() bool
	// passes reports whether node n can take the task.
	passes(n *nodeState) bool
	// explain describes the failure over the given number of nodes, as
	// shown in a task's status: "insufficient memory on 3 nodes".
	explain(nodes int) string
}

// pipeline is the ordered list of filters for one group of alike tasks.
type pipeline struct {
	// node filters read only node attributes, which do not change while a
	// plan is made: they run once per group, not once per task.
	node []filter
	// usage filters read what tasks hold on the node, which grows as the
	// plan places tasks: they run for every task.
	usage []filter
}

// newPipeline builds the filters for req, cheapest first within each stage
// so that most nodes are ruled out by the cheapest check.
func newPipeline(req *requirements, service *serviceState) pipeline {
	var p pipeline
	add := func(stage *[]filter, f filter) {
		if f.applies() {
			*stage = append(*stage, f)
		}
	}
	// Status and availability first: two field reads, and in a degraded
	// cluster they rule out the nodes no other check should bother with.
	add(&p.node, readyFilter{})
	// Then the node's own checks, one filter per condition type so the
	// reason names what is wrong: "node not ready (disk) on 2 nodes".
	for _, typ := range conditionTypes {
		add(&p.node, conditionFilter{typ})
	}
	add(&p.node, conditionFilter{})
	add(&p.node, availabilityFilter{berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, "node paused"})
	add(&p.node, availabilityFilter{berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN, "node drained"})
	// Constraints next: a string compare or a label lookup each. One filter
	// per constraint, so the reason names the constraint that failed.
	for _, c := range req.constraints {
		add(&p.node, constraintFilter{c})
	}
	// Platform: a few string compares.
	add(&p.node, platformFilter{req.platforms})

	// The per-node cap first: one array read, and the most specific reason.
	add(&p.usage, maxPerNodeFilter{max: req.maxPerNode, service: service})
	// Resources: two subtractions per node.
	add(&p.usage, cpuFilter{need: req.cpu})
	add(&p.usage, memoryFilter{need: req.memory})
	// Host ports last: a map lookup per published port.
	for _, hp := range req.ports {
		add(&p.usage, portFilter{hp})
	}
	// Port ranges: a scan of the range at worst.
	for _, r := range req.ranges {
		add(&p.usage, portRangeFilter{r})
	}
	return p
}

// onNodes phrases a failure over a number of nodes.
func onNodes(what string, nodes int) string {
	if nodes == 1 {
		return what + " on 1 node"
	}
	return fmt.Sprintf("%s on %d nodes", what, nodes)
}

// readyFilter keeps nodes whose agent is connected and healthy.
type readyFilter struct{}

func (readyFilter) applies() bool { return true }

func (readyFilter) passes(n *nodeState) bool {
	return n.node.GetStatus() == berthv1.NodeStatus_NODE_STATUS_READY
}

func (readyFilter) explain(nodes int) string { return onNodes("node not ready", nodes) }

// conditionTypes are the condition types with a filter of their own, in
// the order their failures are checked.
var conditionTypes = []string{nodestate.Runtime, nodestate.Network, nodestate.CNI, nodestate.Disk}

// conditionFilter rules out nodes whose agent reports a failing condition
// of its type (api/nodestate); with no type, of any type not in
// conditionTypes.
type conditionFilter struct {
	typ string
}

func (conditionFilter) applies() bool { return true }

func (f conditionFilter) passes(n *nodeState) bool {
	for _, c := range n.node.GetConditions() {
		if c.GetOk() {
			continue
		}
		if f.typ == c.GetType() || (f.typ == "" && !slices.Contains(conditionTypes, c.GetType())) {
			return false
		}
	}
	return true
}

func (f conditionFilter) explain(nodes int) string {
	if f.typ == "" {
		return onNodes("node not ready (other condition)", nodes)
	}
	return onNodes("node not ready ("+f.typ+")", nodes)
}

// availabilityFilter rules out nodes the operator set to one availability
// (paused: keep running tasks, take no new ones; drained: take nothing).
// An unspecified availability counts as active.
type availabilityFilter struct {
	availability berthv1.NodeAvailability
	failure      string
}

func (availabilityFilter) applies() bool { return true }

func (f availabilityFilter) passes(n *nodeState) bool {
	return n.node.GetAvailability() != f.availability
}

func (f availabilityFilter) explain(nodes int) string { return onNodes(f.failure, nodes) }

// constraintFilter keeps nodes that satisfy one placement constraint.
type constraintFilter struct {
	c constraint.Constraint
}

func (constraintFilter) applies() bool { return true }

func (f constraintFilter) passes(n *nodeState) bool { return f.c.Match(n.node) }

func (f constraintFilter) explain(nodes int) string {
	return onNodes("constraint "+f.c.String(), nodes)
}

// cpuFilter keeps nodes with enough unreserved CPU. A node that reports no
// CPU capacity (0: unknown) takes no task that reserves CPU, because a
// reservation is a promise that cannot be kept without knowing the size.
type cpuFilter struct {
	need int64
}

func (f cpuFilter) applies() bool { return f.need > 0 }

func (f cpuFilter) passes(n *nodeState) bool {
	return n.cpuCapacity > 0 && f.need <= n.cpuCapacity-n.cpuReserved
}

func (cpuFilter) explain(nodes int) string { return onNodes("insufficient cpu", nodes) }

// memoryFilter keeps nodes with enough unreserved memory; like cpuFilter,
// an unknown (0) capacity fits no reservation.
type memoryFilter struct {
	need int64
}

func (f memoryFilter) applies() bool { return f.need > 0 }

func (f memoryFilter) passes(n *nodeState) bool {
	return n.memoryCapacity > 0 && f.need <= n.memoryCapacity-n.memoryReserved
}

func (memoryFilter) explain(nodes int) string { return onNodes("insufficient memory", nodes) }

// portFilter keeps nodes where one published host port is free.
type portFilter struct {
	port hostPort
}

func (portFilter) applies() bool { return true }

func (f portFilter) passes(n *nodeState) bool { return !n.portInUse(f.port) }

func (f portFilter) explain(nodes int) string {
	return onNodes("host port "+f.port.String()+" in use", nodes)
}

// platformFilter keeps nodes whose platform is one the task runs on. A
// node that reports no operating system or architecture passes only
// entries that leave that field empty: an image built for linux/arm64
// cannot be promised to run on a node of unknown architecture.
type platformFilter struct {
	want []platform
}

// applies is false for an empty list or one holding an entry that matches
// anything.
func (f platformFilter) applies() bool {
	for _, p := range f.want {
		if p == (platform{}) {
			return false
		}
	}
	return len(f.want) > 0
}

func (f platformFilter) passes(n *nodeState) bool {
	for _, p := range f.want {
		if p.matches(n.platform) {
			return true
		}
	}
	return false
}

func (f platformFilter) explain(nodes int) string {
	names := make([]string, len(f.want))
	for i, p := range f.want {
		names[i] = p.String()
	}
	if len(names) == 1 {
		return onNodes("platform "+names[0]+" not supported", nodes)
	}
	return onNodes("platforms "+strings.Join(names, ", ")+" not supported", nodes)
}

// maxPerNodeFilter keeps nodes holding fewer than max tasks of the
// service.
type maxPerNodeFilter struct {
	max     uint64
	service *serviceState
}

func (f maxPerNodeFilter) applies() bool { return f.max > 0 }

func (f maxPerNodeFilter) passes(n *nodeState) bool {
	return uint64(f.service.tasks[n.index]) < f.max
}

func (f maxPerNodeFilter) explain(nodes int) string {
	unit := "replicas"
	if f.max == 1 {
		unit = "replica"
	}
	return onNodes(fmt.Sprintf("max %d %s of the service per node", f.max, unit), nodes)
}

// portRangeFilter keeps nodes where some port of a published range is
// free.
type portRangeFilter struct {
	r portRange
}

func (portRangeFilter) applies() bool { return true }

func (f portRangeFilter) passes(n *nodeState) bool { return f.r.free(n) != 0 }

func (f portRangeFilter) explain(nodes int) string {
	return onNodes("no free host port in "+f.r.String(), nodes)
}
