package scheduler

import (
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/volume"
)

// A named volume lives on one node. A replicated service's slot has its
// own ("<source>.<slot>"), and once the slot's first task is placed, the
// volume's record holds its node: every later task of the slot goes there
// or waits for it, rather than start elsewhere with an empty volume. A
// global service's task already has its node, whose volume is its own
// ("<source>.<node name>"), so it needs no pinning.

// VolumeLookup finds the record of a named volume. store.Cache is one.
type VolumeLookup interface {
	Volume(namespace, name string) (*berthv1.Volume, bool)
}

// TaskVolume is one named volume a task mounts.
type TaskVolume struct {
	// Name is the volume's name in the namespace: "<source>.<slot>", or
	// "<source>.<node name>" for a global service's task.
	Name   string
	Source string
	// External is set when the volume is not the app's own: `berth
	// delete --volumes` keeps it.
	External bool
}

// TaskVolumes lists the named volumes a task of spec in slot uses on the
// node named nodeName (read only for a global service's slot 0), each
// source once, in the order of the spec's mounts.
func TaskVolumes(spec *berthv1.ServiceSpec, slot uint64, nodeName string) []TaskVolume {
	var out []TaskVolume
	for _, m := range spec.GetMounts() {
		if !volume.IsNamed(m) {
			continue
		}
		dup := false
		for _, v := range out {
			dup = dup || v.Source == m.GetSource()
		}
		if !dup {
			out = append(out, TaskVolume{Name: volume.Name(m.GetSource(), slot, nodeName), Source: m.GetSource(), External: m.GetExternal()})
		}
	}
	return out
}

// volumePin is where a pending task must run because of its volumes.
type volumePin struct {
	// nodeID is the node that holds volume; "" when no volume of the
	// task has a node yet.
	nodeID, volume string
	// conflict, when set, is why the task can run nowhere: its volumes
	// are on different nodes.
	conflict string
}

// pinOf finds the node that holds the volumes of t: from their records,
// or from a task of this call that was placed with the same volume. Only a
// replicated task (slot > 0) is pinned.
func (c *cluster) pinOf(t *berthv1.Task) volumePin {
	if t.GetSlot() == 0 || len(t.GetSpec().GetMounts()) == 0 {
		return volumePin{}
	}
	var pin volumePin
	for _, v := range TaskVolumes(t.GetSpec(), t.GetSlot(), "") {
		key := t.GetNamespace() + "/" + v.Name
		nodeID, ok := c.volumeNodes[key]
		if !ok && c.volumes != nil {
			if rec, found := c.volumes.Volume(t.GetNamespace(), v.Name); found {
				nodeID = rec.GetNodeId()
			}
		}
		switch {
		case nodeID == "":
		case pin.nodeID == "":
			pin.nodeID, pin.volume = nodeID, v.Name
		case pin.nodeID != nodeID:
			pin.conflict = fmt.Sprintf("volumes %s (on node %s) and %s (on node %s) are on different nodes, so no node has both; remove one with berth volume rm to start it anew",
				pin.volume, c.nodeName(pin.nodeID), v.Name, c.nodeName(nodeID))
			return pin
		}
	}
	return pin
}

// pinnedFirst finds the pending tasks pinned by their volumes, which are
// placed first: they have one node to go to, which the others may not take
// from them. It returns the order to place pending in (nil: as given) and
// the pins by index; both nil, at no cost, when no task has a volume.
func (c *cluster) pinnedFirst(pending []*berthv1.Task) ([]int, map[int]volumePin) {
	var pins map[int]volumePin
	for k, t := range pending {
		if t.GetNodeId() != "" {
			continue
		}
		if pin := c.pinOf(t); pin != (volumePin{}) {
			if pins == nil {
				pins = make(map[int]volumePin)
			}
			pins[k] = pin
		}
	}
	if pins == nil {
		return nil, nil
	}
	order := make([]int, 0, len(pending))
	for k := range pending {
		if _, ok := pins[k]; ok {
			order = append(order, k)
		}
	}
	for k := range pending {
		if _, ok := pins[k]; !ok {
			order = append(order, k)
		}
	}
	return order, pins
}

// placePinned checks the node that holds the task's volume, with every
// filter of g. It returns the node's index, or -1 and why the task waits.
// A node that is down, not ready, paused or drained gives the plain
// reason; any other filter that fails is named after it.
func (c *cluster) placePinned(g *group, pin volumePin) (int, string) {
	waiting := fmt.Sprintf("waiting for node %s, which holds volume %s", c.nodeName(pin.nodeID), pin.volume)
	i, ok := c.byID[pin.nodeID]
	if !ok {
		return -1, waiting + " (the node is not in the cluster; berth volume rm --force " + pin.volume + " gives up its data and lets the slot start anew)"
	}
	if g.err != "" {
		return -1, g.err
	}
	c.prepare(g, false)
	switch f := c.failingFilter(g, i).(type) {
	case nil:
		return i, ""
	case readyFilter, availabilityFilter:
		return -1, waiting
	default:
		return -1, waiting + " (" + f.explain(1) + ")"
	}
}

// recordVolumes remembers the node of the volumes of a task placed in
// this call, so that a later task with the same volume goes there too.
func (c *cluster) recordVolumes(t *berthv1.Task, node int) {
	if t.GetSlot() == 0 || len(t.GetSpec().GetMounts()) == 0 {
		return
	}
	for _, v := range TaskVolumes(t.GetSpec(), t.GetSlot(), "") {
		if c.volumeNodes == nil {
			c.volumeNodes = make(map[string]string)
		}
		c.volumeNodes[t.GetNamespace()+"/"+v.Name] = c.nodes[node].id
	}
}

// nodeName is how a reason names node id: its name, else its ID.
func (c *cluster) nodeName(id string) string {
	if i, ok := c.byID[id]; ok && c.nodes[i].node.GetName() != "" {
		return c.nodes[i].node.GetName()
	}
	return id
}
