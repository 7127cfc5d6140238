package scheduler

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Usage is what the tasks on each node hold: reserved CPU and memory, the
// task count, published host ports, and each service's tasks per node. Its
// owner keeps it up to date, task by task, as tasks change (Update,
// Remove), so that a Schedule call reads the cluster's load in time
// proportional to the nodes, not to every task of the cluster: counting
// 100,000 tasks is most of a call's cost at 5,000 nodes.
//
// A Usage is not safe for concurrent use; Schedule only reads it.
type Usage struct {
	nodes map[string]*nodeUsage
	// held is what each counted task holds, by task ID, so that an update
	// or a removal takes back exactly what the task added.
	held map[string]heldTask
	// services counts each service's tasks per node ID.
	services map[string]map[string]int32
}

// nodeUsage is what the counted tasks of one node hold.
type nodeUsage struct {
	cpu, memory int64
	tasks       int
	// ports counts the tasks that publish each host port; list is the
	// same as the node's port table, remade when ports change, which
	// Schedule calls share instead of building their own.
	ports map[hostPort]int32
	list  []portEntry
}

// heldTask is what one counted task holds.
type heldTask struct {
	node, service string
	cpu, memory   int64
	ports         []hostPort
}

// NewUsage returns an empty Usage.
func NewUsage() *Usage {
	return &Usage{
		nodes:    make(map[string]*nodeUsage),
		held:     make(map[string]heldTask),
		services: make(map[string]map[string]int32),
	}
}

// Holds reports whether t holds room on its node: placed there and not
// finished. These are the tasks a Usage counts.
func Holds(t *berthv1.Task) bool {
	st := t.GetStatus().GetState()
	return t.GetNodeId() != "" && st >= berthv1.TaskState_TASK_STATE_ASSIGNED && st <= berthv1.TaskState_TASK_STATE_RUNNING
}

// Update counts t as it is now, in place of what it held before: a task
// that no longer holds room (finished) is taken out.
func (u *Usage) Update(t *berthv1.Task) {
	id := t.GetMeta().GetId()
	u.Remove(id)
	if !Holds(t) {
		return
	}
	spec := t.GetSpec()
	h := heldTask{
		node:    t.GetNodeId(),
		service: serviceKey(t),
		cpu:     max(spec.GetReservations().GetMilliCpus(), 0),
		memory:  max(spec.GetReservations().GetMemoryBytes(), 0),
		ports:   taskHostPorts(t),
	}
	u.held[id] = h
	n := u.nodes[h.node]
	if n == nil {
		n = &nodeUsage{}
		u.nodes[h.node] = n
	}
	n.add(h, 1)
	counts := u.services[h.service]
	if counts == nil {
		counts = make(map[string]int32)
		u.services[h.service] = counts
	}
	counts[h.node]++
}

// Remove takes the task with the given ID out, if it was counted.
func (u *Usage) Remove(id string) {
	h, ok := u.held[id]
	if !ok {
		return
	}
	delete(u.held, id)
	n := u.nodes[h.node]
	n.add(h, -1)
	if n.tasks == 0 {
		delete(u.nodes, h.node)
	}
	counts := u.services[h.service]
	if counts[h.node]--; counts[h.node] == 0 {
		delete(counts, h.node)
		if len(counts) == 0 {
			delete(u.services, h.service)
		}
	}
}

// Len is the number of tasks counted.
func (u *Usage) Len() int { return len(u.held) }

// add counts delta (1 or -1) times what h holds.
func (n *nodeUsage) add(h heldTask, delta int) {
	n.tasks += delta
	n.cpu += int64(delta) * h.cpu
	n.memory += int64(delta) * h.memory
	for _, p := range h.ports {
		if n.ports == nil {
			n.ports = make(map[hostPort]int32)
		}
		if n.ports[p] += int32(delta); n.ports[p] == 0 {
			delete(n.ports, p)
		}
	}
	if len(h.ports) > 0 {
		var table nodeState
		for p := range n.ports {
			table.publish(p)
		}
		n.list = table.ports
	}
}

// load fills the nodes of c, and the task lists of the services with
// pending tasks, from u. Tasks in skip (pending in this call) are left
// out, as when counting a snapshot's tasks.
func (u *Usage) load(c *cluster, services map[string]*serviceState, skip map[string]struct{}) {
	// Pending tasks are rarely counted (a Usage counts placed tasks); when
	// one is, what it holds is taken back from a copy of its node.
	var skipped map[string][]heldTask
	for id := range skip {
		if h, ok := u.held[id]; ok {
			if skipped == nil {
				skipped = make(map[string][]heldTask)
			}
			skipped[h.node] = append(skipped[h.node], h)
		}
	}
	for i := range c.nodes {
		n := &c.nodes[i]
		nu := u.nodes[n.id]
		if nu == nil {
			continue
		}
		if hs := skipped[n.id]; hs != nil {
			copied := &nodeUsage{cpu: nu.cpu, memory: nu.memory, tasks: nu.tasks, ports: make(map[hostPort]int32, len(nu.ports))}
			for p, k := range nu.ports {
				copied.ports[p] = k
			}
			for _, h := range hs {
				copied.add(h, -1)
			}
			nu = copied
		}
		n.tasks += nu.tasks
		n.cpuReserved += nu.cpu
		n.memoryReserved += nu.memory
		if len(n.ports) == 0 && len(nu.list) > 0 {
			n.ports, n.portsShared = nu.list, true
		} else {
			for p := range nu.ports {
				n.publish(p)
			}
		}
	}
	for svc, s := range services {
		for node, k := range u.services[svc] {
			i, ok := c.byID[node]
			if !ok {
				continue
			}
			for _, h := range skipped[node] {
				if h.service == svc {
					k--
				}
			}
			if k > 0 {
				s.onCounts = append(s.onCounts, nodeCount{int32(i), int32(k)})
			}
		}
	}
}
