package scheduler

import (
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
)

// nodeState is one node and what the tasks on it hold. It is counted once
// per Schedule call and updated as the plan places tasks.
type nodeState struct {
	node *berthv1.Node
	id   string
	// index is the node's position in cluster.nodes (its ID order).
	index int32

	cpuCapacity, cpuReserved       int64
	memoryCapacity, memoryReserved int64
	// tasks counts every task on the node, of any service.
	tasks int
	// ports are the published host ports in use; nil when none. A node
	// publishes few ports, so a slice searched in order beats a map, whose
	// allocation per node dominated counting a large snapshot.
	ports []portEntry
	// portsShared is set while ports is a Usage's table, which publish
	// copies before changing.
	portsShared bool
	// platform is the node's normalized platform, filled only when some
	// task asks for a platform.
	platform platform
}

// portKey is a host port regardless of the address it binds.
type portKey struct {
	port     uint32
	protocol string
}

// portEntry records which host addresses one port is bound on.
type portEntry struct {
	key          portKey
	allAddresses bool
	addresses    []string
}

// portInUse reports whether p conflicts with a port published on the node:
// the same port and protocol on the same address, or on all addresses on
// either side.
func (n *nodeState) portInUse(p hostPort) bool {
	k := portKey{p.port, p.protocol}
	for i := range n.ports {
		if use := &n.ports[i]; use.key == k {
			return p.hostIP == "" || use.allAddresses || slices.Contains(use.addresses, p.hostIP)
		}
	}
	return false
}

func (n *nodeState) publish(p hostPort) {
	if n.portsShared {
		own := make([]portEntry, len(n.ports), len(n.ports)+1)
		for i, e := range n.ports {
			own[i] = portEntry{key: e.key, allAddresses: e.allAddresses, addresses: slices.Clone(e.addresses)}
		}
		n.ports, n.portsShared = own, false
	}
	k := portKey{p.port, p.protocol}
	i := slices.IndexFunc(n.ports, func(e portEntry) bool { return e.key == k })
	if i < 0 {
		n.ports = append(n.ports, portEntry{key: k})
		i = len(n.ports) - 1
	}
	use := &n.ports[i]
	if p.hostIP == "" {
		use.allAddresses = true
	} else if !slices.Contains(use.addresses, p.hostIP) {
		use.addresses = append(use.addresses, p.hostIP)
	}
}

// reservedShare is how full the node is for binpacking: the reserved share
// of its CPU plus the reserved share of its memory. A resource of unknown
// (0) capacity adds nothing.
func (n *nodeState) reservedShare() float64 {
	var s float64
	if n.cpuCapacity > 0 {
		s += float64(n.cpuReserved) / float64(n.cpuCapacity)
	}
	if n.memoryCapacity > 0 {
		s += float64(n.memoryReserved) / float64(n.memoryCapacity)
	}
	return s
}

// serviceState is what placement tracks for one service with pending
// tasks.
type serviceState struct {
	// on lists the node of each of the service's tasks in the snapshot,
	// onCounts how many tasks a Usage counts on a node (one entry per
	// node, not per task: a service of 10,000 tasks costs its nodes), and
	// failedOn the node of each recent failure; the dense counts below
	// are made from them when the service's first task is placed.
	on, failedOn []int32
	onCounts     []nodeCount
	// tasks counts the service's tasks per node (indexed like nodes); nil
	// until first use, and released when the service has no task left to
	// place, so that a batch of many small services does not hold one
	// array per service at once.
	tasks []int32
	// failures counts recent failures per node; nil when none.
	failures []int32
	// remaining is the number of the service's pending tasks not yet
	// placed or refused.
	remaining int
	// spreads are the preference counts in use, so placing a task updates
	// every one of them.
	spreads []*spreadCounts
}

// nodeCount is a number of tasks on the node of index node.
type nodeCount struct{ node, count int32 }

// cluster is the working state of one Schedule call.
type cluster struct {
	// nodes are sorted by ID, so a node's index orders it for tie-breaks.
	nodes []nodeState
	byID  map[string]int
	// words is the length of a bitset over nodes.
	words    int
	services map[string]*serviceState
	// buckets group nodes by preference label values, per label list; they
	// depend on node labels only, so services share them.
	buckets map[string]*prefBuckets
	// images holds, per normalized image, the bitset of nodes that have it
	// (nil when none has).
	images map[string][]uint64
	// normalized caches image references seen on nodes: the same few
	// references repeat on many nodes, and parsing one is not cheap.
	normalized map[string]string
	// candidateSets are the nodes passing the node filters, per set of
	// constraints and platforms: node filters read only static node
	// attributes, so groups asking the same share one set.
	candidateSets map[string]*candidateSet
	platformsDone bool
	// load orders nodes by their total task count, for spread groups.
	load loadLevels
	// placed lists the node of every placement in this call, in order;
	// binpack groups read it to catch up with other groups' placements.
	placed []int32
	// free holds released per-service count arrays for reuse, and
	// freeRanks released binpack heaps.
	free      [][]int32
	freeRanks [][]uint64
	// volumes finds volume records; volumeNodes holds the node ID of each
	// volume ("<namespace>/<name>") placed with a task in this call.
	volumes     VolumeLookup
	volumeNodes map[string]string
}

// newCluster counts the snapshot. services are the services whose tasks
// are tracked per node; snapshot tasks whose ID is in skip are not counted
// (they are being placed again).
func newCluster(snap Snapshot, services map[string]*serviceState, skip map[string]struct{}) *cluster {
	c := &cluster{
		nodes:         make([]nodeState, 0, len(snap.Nodes)),
		byID:          make(map[string]int, len(snap.Nodes)),
		services:      services,
		buckets:       make(map[string]*prefBuckets),
		images:        make(map[string][]uint64),
		normalized:    make(map[string]string),
		candidateSets: make(map[string]*candidateSet),
		volumes:       snap.Volumes,
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
		c.nodes[i].index = int32(i)
		if _, dup := c.byID[c.nodes[i].id]; !dup {
			c.byID[c.nodes[i].id] = i
		}
	}
	c.words = (len(c.nodes) + 63) / 64

	// Snapshots list a service's tasks together (the store orders them by
	// service), so the last service looked up is usually the next one.
	if snap.Usage != nil {
		snap.Usage.load(c, services, skip)
	}
	var (
		lastService string
		lastState   *serviceState
	)
	for _, t := range snap.Tasks {
		i, ok := c.byID[t.GetNodeId()]
		if !ok || t.GetStatus().GetState() > berthv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		svc := serviceKey(t)
		if svc != lastService || lastState == nil {
			lastService, lastState = svc, services[svc]
		}
		// Only a task of a service with pending tasks can be pending.
		if lastState != nil {
			if _, ok := skip[t.GetMeta().GetId()]; ok {
				continue
			}
			lastState.on = append(lastState.on, int32(i))
		}
		n := &c.nodes[i]
		spec := t.GetSpec()
		n.tasks++
		n.cpuReserved += max(spec.GetReservations().GetMilliCpus(), 0)
		n.memoryReserved += max(spec.GetReservations().GetMemoryBytes(), 0)
		for _, p := range taskHostPorts(t) {
			n.publish(p)
		}
	}
	for _, t := range snap.Failed {
		i, ok := c.byID[t.GetNodeId()]
		if !ok {
			continue
		}
		if s, ok := services[serviceKey(t)]; ok {
			s.failedOn = append(s.failedOn, int32(i))
		}
	}
	c.load = newLoadLevels(c.nodes, c.words)
	return c
}

// counts returns a zeroed array of one int32 per node.
func (c *cluster) counts() []int32 {
	if k := len(c.free); k > 0 {
		a := c.free[k-1]
		c.free = c.free[:k-1]
		clear(a)
		return a
	}
	return make([]int32, len(c.nodes))
}

// activate makes the dense per-node counts of s.
func (c *cluster) activate(s *serviceState) {
	if s.tasks != nil {
		return
	}
	s.tasks = c.counts()
	for _, i := range s.on {
		s.tasks[i]++
	}
	for _, nc := range s.onCounts {
		s.tasks[nc.node] += nc.count
	}
	if len(s.failedOn) > 0 {
		s.failures = c.counts()
		for _, i := range s.failedOn {
			s.failures[i]++
		}
	}
}

// release gives the dense counts of a service that has nothing left to
// place back for reuse.
func (c *cluster) release(s *serviceState) {
	if s.tasks != nil {
		c.free = append(c.free, s.tasks)
	}
	if s.failures != nil {
		c.free = append(c.free, s.failures)
	}
	s.tasks, s.failures, s.spreads = nil, nil, nil
}

// assign records a task of g on node i, so later tasks see what it holds,
// and returns the host ports it is given of its port ranges (nil when it
// has none).
func (c *cluster) assign(g *group, i int) []*berthv1.PortBinding {
	n := &c.nodes[i]
	c.load.move(i, n.tasks, n.tasks+1)
	n.tasks++
	n.cpuReserved += g.req.cpu
	n.memoryReserved += g.req.memory
	for _, p := range g.req.ports {
		n.publish(p)
	}
	var given []*berthv1.PortBinding
	for _, r := range g.req.ranges {
		// The usage filters checked that a port is free.
		if p := r.free(n); p != 0 {
			n.publish(r.port(p))
			given = append(given, &berthv1.PortBinding{Target: r.target, Published: p, Protocol: r.protocol, HostIp: r.hostIP})
		}
	}
	g.service.tasks[i]++
	for _, s := range g.service.spreads {
		s.add(i, 1)
	}
	c.placed = append(c.placed, int32(i))
	return given
}

// normalize returns the normalized form of an image reference, cached.
func (c *cluster) normalize(ref string) string {
	if n, ok := c.normalized[ref]; ok {
		return n
	}
	// A reference that does not parse is compared as written.
	n := imageref.NormalizeOr(ref)
	c.normalized[ref] = n
	return n
}

// imagePresence returns the bitset of nodes that hold image; nil when no
// node does (then the image does not rank nodes).
func (c *cluster) imagePresence(image string) []uint64 {
	if image == "" {
		return nil
	}
	if p, ok := c.images[image]; ok {
		return p
	}
	p := make([]uint64, c.words)
	found := false
	for i := range c.nodes {
		for _, ref := range c.nodes[i].node.GetImages() {
			if c.normalize(ref) == image {
				setBit(p, i)
				found = true
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

func setBit(set []uint64, i int)      { set[i/64] |= 1 << (i % 64) }
func clearBit(set []uint64, i int)    { set[i/64] &^= 1 << (i % 64) }
func hasBit(set []uint64, i int) bool { return set[i/64]&(1<<(i%64)) != 0 }

// loadLevels groups nodes by their total task count, one bitset per count,
// so that "the least loaded nodes, in ID order" is a scan of a few words
// rather than of every node. Levels count from base, the lowest count at
// the start (counts only grow while placing): nodes that each hold
// thousands of tasks need as many levels as their counts differ by, not
// thousands.
type loadLevels struct {
	words int
	base  int
	// sets[t] holds the nodes with base+t tasks; nil for counts never
	// seen.
	sets [][]uint64
	// sizes[t] is the number of nodes in sets[t].
	sizes []int
	// low is at most the lowest level any node is at.
	low int
}

func newLoadLevels(nodes []nodeState, words int) loadLevels {
	l := loadLevels{words: words}
	for i := range nodes {
		if i == 0 || nodes[i].tasks < l.base {
			l.base = nodes[i].tasks
		}
	}
	for i := range nodes {
		l.add(i, nodes[i].tasks)
	}
	return l
}

func (l *loadLevels) add(i, tasks int) {
	tasks -= l.base
	for len(l.sets) <= tasks {
		l.sets = append(l.sets, nil)
		l.sizes = append(l.sizes, 0)
	}
	if l.sets[tasks] == nil {
		l.sets[tasks] = make([]uint64, l.words)
	}
	setBit(l.sets[tasks], i)
	l.sizes[tasks]++
}

// move records that node i went from one task count to another.
func (l *loadLevels) move(i, from, to int) {
	clearBit(l.sets[from-l.base], i)
	l.sizes[from-l.base]--
	l.add(i, to)
	for l.low < len(l.sizes)-1 && l.sizes[l.low] == 0 {
		l.low++
	}
}
