package scheduler

import (
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// nodeState is one node and what the tasks on it hold. It is counted once
// per Schedule call and updated as the plan places tasks.
type nodeState struct {
	node *berthv1.Node
	id   string

	cpuCapacity, cpuReserved       int64
	memoryCapacity, memoryReserved int64
	// tasks counts every task on the node, of any service.
	tasks int
	// ports are the published host ports in use; nil when none.
	ports map[portKey]portUse
}

// portKey is a host port regardless of the address it binds.
type portKey struct {
	port     uint32
	protocol string
}

// portUse records which host addresses one port is bound on.
type portUse struct {
	allAddresses bool
	addresses    []string
}

// portInUse reports whether p conflicts with a port published on the node:
// the same port and protocol on the same address, or on all addresses on
// either side.
func (n *nodeState) portInUse(p hostPort) bool {
	use, ok := n.ports[portKey{p.port, p.protocol}]
	if !ok {
		return false
	}
	return p.hostIP == "" || use.allAddresses || slices.Contains(use.addresses, p.hostIP)
}

func (n *nodeState) publish(p hostPort) {
	if n.ports == nil {
		n.ports = make(map[portKey]portUse)
	}
	k := portKey{p.port, p.protocol}
	use := n.ports[k]
	if p.hostIP == "" {
		use.allAddresses = true
	} else if !slices.Contains(use.addresses, p.hostIP) {
		use.addresses = append(use.addresses, p.hostIP)
	}
	n.ports[k] = use
}

// cluster is the working state of one Schedule call.
type cluster struct {
	// nodes are sorted by ID, so a node's index orders it for tie-breaks.
	nodes []nodeState
	byID  map[string]int
	// serviceTasks counts, per service with pending tasks, the service's
	// tasks on each node (indexed like nodes).
	serviceTasks map[string][]int32
	// failures counts, per service with pending tasks, its recent failures
	// on each node (indexed like nodes).
	failures map[string][]int32
	// spreads are the preference counts in use, per service, so placing a
	// task updates every one of them.
	spreads map[string][]*spreadCounts
	// buckets group nodes by preference label values, per label list; they
	// depend on node labels only, so services share them.
	buckets map[string]*prefBuckets
	// images holds, per normalized image, which nodes have it.
	images map[string][]bool
	// normalized caches image references seen on nodes: the same few
	// references repeat on many nodes, and parsing one is not cheap.
	normalized map[string]string
}

func newCluster(snap Snapshot, pending []*berthv1.Task) *cluster {
	c := &cluster{
		nodes:        make([]nodeState, 0, len(snap.Nodes)),
		byID:         make(map[string]int, len(snap.Nodes)),
		serviceTasks: make(map[string][]int32),
		failures:     make(map[string][]int32),
		spreads:      make(map[string][]*spreadCounts),
		buckets:      make(map[string]*prefBuckets),
		images:       make(map[string][]bool),
		normalized:   make(map[string]string),
	}
	for _, n := range snap.Nodes {
		c.nodes = append(c.nodes, nodeState{
			node:           n,
			id:             n.GetMeta().GetId(),
			cpuCapacity:    n.GetCapacity().GetMilliCpus(),
			memoryCapacity: n.GetCapacity().GetMemoryBytes(),
		})
	}
	slices.SortStableFunc(c.nodes, func(a, b nodeState) int { return strings.Compare(a.id, b.id) })
	for i := range c.nodes {
		if _, dup := c.byID[c.nodes[i].id]; !dup {
			c.byID[c.nodes[i].id] = i
		}
	}

	pendingIDs := make(map[string]struct{}, len(pending))
	for _, t := range pending {
		if id := t.GetMeta().GetId(); id != "" {
			pendingIDs[id] = struct{}{}
		}
		svc := serviceKey(t)
		if _, ok := c.serviceTasks[svc]; !ok {
			c.serviceTasks[svc] = make([]int32, len(c.nodes))
		}
	}

	for _, t := range snap.Tasks {
		i, ok := c.byID[t.GetNodeId()]
		if !ok || t.GetStatus().GetState() > berthv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		if _, ok := pendingIDs[t.GetMeta().GetId()]; ok {
			continue
		}
		n := &c.nodes[i]
		spec := t.GetSpec()
		n.tasks++
		n.cpuReserved += max(spec.GetReservations().GetMilliCpus(), 0)
		n.memoryReserved += max(spec.GetReservations().GetMemoryBytes(), 0)
		for _, p := range spec.GetPorts() {
			if p.GetPublished() != 0 {
				n.publish(newHostPort(p.GetPublished(), p.GetProtocol(), p.GetHostIp()))
			}
		}
		// Ports the agent bound on its own choice hold the host port too.
		for _, p := range t.GetStatus().GetPorts() {
			if p.GetPublished() != 0 {
				n.publish(newHostPort(p.GetPublished(), p.GetProtocol(), p.GetHostIp()))
			}
		}
		if counts, ok := c.serviceTasks[serviceKey(t)]; ok {
			counts[i]++
		}
	}
	for _, t := range snap.Failed {
		i, ok := c.byID[t.GetNodeId()]
		svc := serviceKey(t)
		if _, pendingService := c.serviceTasks[svc]; !ok || !pendingService {
			continue
		}
		if c.failures[svc] == nil {
			c.failures[svc] = make([]int32, len(c.nodes))
		}
		c.failures[svc][i]++
	}
	return c
}

// group is the placement work shared by alike pending tasks (same service
// and same placement-relevant spec): parsing, node filtering, image lookup
// and spread counts happen once per group.
type group struct {
	req requirements
	// err, when set, is why no task of the group can be placed anywhere.
	err      string
	pipeline pipeline

	// candidates are the indices of the nodes that pass the node filters,
	// in ID order; nodeFailures counts the others per node filter. Both are
	// made on first use, since a group of preset-node tasks needs neither.
	candidatesDone bool
	candidates     []int
	nodeFailures   []int
	// usageFailures is scratch space for one pick, per usage filter.
	usageFailures []int

	serviceTasks []int32
	// failures is nil when the service failed nowhere recently.
	failures []int32
	// hasImage is nil when no node has the image.
	hasImage []bool
	// spread is nil when the service has no placement preferences.
	spread *spreadCounts
}

func (c *cluster) groupFor(t *berthv1.Task, groups map[string]*group) *group {
	key := groupKey(t)
	if g, ok := groups[key]; ok {
		return g
	}
	g := &group{}
	groups[key] = g
	req, err := requirementsOf(t, c.normalize)
	if err != nil {
		g.err = err.Error()
		return g
	}
	g.req = req
	g.pipeline = newPipeline(&g.req)
	g.usageFailures = make([]int, len(g.pipeline.usage))
	g.serviceTasks = c.serviceTasks[req.service]
	g.failures = c.failures[req.service]
	g.hasImage = c.imagePresence(req.image)
	if len(req.preferences) > 0 {
		g.spread = c.spreadFor(req.service, req.preferences, g.serviceTasks)
	}
	return g
}

// prepareCandidates runs the node filters of g over every node, once.
func (c *cluster) prepareCandidates(g *group) {
	if g.candidatesDone {
		return
	}
	g.candidatesDone = true
	g.nodeFailures = make([]int, len(g.pipeline.node))
	g.candidates = make([]int, 0, len(c.nodes))
	for i := range c.nodes {
		n := &c.nodes[i]
		fits := true
		for k, f := range g.pipeline.node {
			if !f.passes(n) {
				g.nodeFailures[k]++
				fits = false
				break
			}
		}
		if fits {
			g.candidates = append(g.candidates, i)
		}
	}
}

// assign records a task of g on node i, so later tasks see what it holds.
func (c *cluster) assign(g *group, i int) {
	n := &c.nodes[i]
	n.tasks++
	n.cpuReserved += g.req.cpu
	n.memoryReserved += g.req.memory
	for _, p := range g.req.ports {
		n.publish(p)
	}
	g.serviceTasks[i]++
	for _, s := range c.spreads[g.req.service] {
		s.add(i, 1)
	}
}

// normalize returns the normalized form of an image reference, cached.
func (c *cluster) normalize(ref string) string {
	if n, ok := c.normalized[ref]; ok {
		return n
	}
	n := normalizeImage(ref)
	c.normalized[ref] = n
	return n
}

// imagePresence reports, per node, whether the node holds image; nil when
// no node does (then the image does not rank nodes).
func (c *cluster) imagePresence(image string) []bool {
	if image == "" {
		return nil
	}
	if p, ok := c.images[image]; ok {
		return p
	}
	p := make([]bool, len(c.nodes))
	found := false
	for i := range c.nodes {
		for _, ref := range c.nodes[i].node.GetImages() {
			if c.normalize(ref) == image {
				p[i], found = true, true
				break
			}
		}
	}
	if !found {
		p = nil
	}
	c.images[image] = p
	return p
}
