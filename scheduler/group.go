package scheduler

import (
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// group is the placement work shared by alike pending tasks (same service
// and same placement-relevant spec): parsing, node filtering, image lookup
// and the ranking of nodes happen once per group, not once per task.
type group struct {
	req requirements
	// err, when set, is why no task of the group can be placed anywhere.
	err      string
	pipeline pipeline
	service  *serviceState
	binpack  bool
	// remaining counts the group's tasks not yet placed or refused; the
	// group's ranking state is dropped when it reaches 0.
	remaining int

	prepared bool
	// cands are the nodes passing the node filters. Made on first use,
	// since a group of preset-node tasks needs none.
	cands *candidateSet
	// usageFailures is scratch space for explaining, per usage filter.
	usageFailures []int
	// hasImage is nil when no node has the image.
	hasImage []uint64
	// spread is nil when the service has no placement preferences.
	spread *spreadCounts

	ranking ranking

	// reason caches why no node fits; it holds while no task was placed
	// since (placements only take room away, never give it).
	reason   string
	reasonAt int
}

// candidateSet is the nodes that pass one list of node filters.
type candidateSet struct {
	list []int32
	bits []uint64
	// failures counts the nodes each node filter ruled out.
	failures []int
}

// groupFor returns the group of t, made on first use.
func (c *cluster) groupFor(t *berthv1.Task, defaultStrategy berthv1.SchedulingStrategy, groups map[string]*group) *group {
	key := groupKey(t)
	if g, ok := groups[key]; ok {
		return g
	}
	g := &group{service: c.services[serviceKey(t)]}
	groups[key] = g
	req, err := requirementsOf(t, c.normalize)
	if err != nil {
		g.err = err.Error()
		return g
	}
	g.req = req
	g.binpack = strategyOf(t, defaultStrategy) == berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK
	g.pipeline = newPipeline(&g.req, g.service)
	g.usageFailures = make([]int, len(g.pipeline.usage))
	return g
}

// strategyOf resolves the strategy of t: its own, else the cluster's, else
// spread.
func strategyOf(t *berthv1.Task, cluster berthv1.SchedulingStrategy) berthv1.SchedulingStrategy {
	if s := t.GetSpec().GetStrategy(); s != berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED {
		return s
	}
	if cluster != berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED {
		return cluster
	}
	return berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD
}

// prepare makes what every placement of g reads: the service's counts, and
// for groups placed by ranking, the candidates, image and spread counts.
func (c *cluster) prepare(g *group, ranked bool) {
	c.activate(g.service)
	if len(g.req.platforms) > 0 {
		c.preparePlatforms()
	}
	if !ranked || g.prepared {
		return
	}
	g.prepared = true
	g.cands = c.candidatesFor(g)
	g.hasImage = c.imagePresence(g.req.image)
	if len(g.req.preferences) > 0 {
		g.spread = c.spreadFor(g.service, g.req.preferences)
	}
}

// done records that one task of g was placed or refused, and drops what g
// and its service hold once they have nothing left to place.
func (c *cluster) done(g *group) {
	g.remaining--
	if g.remaining == 0 {
		if g.ranking.heap.keys != nil {
			c.freeRanks = append(c.freeRanks, g.ranking.heap.keys[:0])
		}
		g.ranking = ranking{}
		g.cands, g.spread = nil, nil
	}
	if g.service == nil {
		return
	}
	g.service.remaining--
	if g.service.remaining == 0 {
		c.release(g.service)
	}
}

// candidatesFor runs the node filters of g over every node, once per
// distinct list of node filters.
func (c *cluster) candidatesFor(g *group) *candidateSet {
	key := nodeFilterKey(&g.req)
	if s, ok := c.candidateSets[key]; ok {
		return s
	}
	s := &candidateSet{
		list:     make([]int32, 0, len(c.nodes)),
		bits:     make([]uint64, c.words),
		failures: make([]int, len(g.pipeline.node)),
	}
	for i := range c.nodes {
		n := &c.nodes[i]
		fits := true
		for k, f := range g.pipeline.node {
			if !f.passes(n) {
				s.failures[k]++
				fits = false
				break
			}
		}
		if fits {
			s.list = append(s.list, int32(i))
			setBit(s.bits, i)
		}
	}
	c.candidateSets[key] = s
	return s
}

// nodeFilterKey is equal for two requirements exactly when their node
// filters are.
func nodeFilterKey(req *requirements) string {
	var b strings.Builder
	for _, c := range req.constraints {
		b.WriteString(c.String())
		b.WriteByte(0)
	}
	b.WriteByte(1)
	for _, p := range req.platforms {
		b.WriteString(p.String())
		b.WriteByte(0)
	}
	return b.String()
}

// preparePlatforms normalizes every node's platform, once per call and
// only when some task asks for a platform.
func (c *cluster) preparePlatforms() {
	if c.platformsDone {
		return
	}
	c.platformsDone = true
	seen := make(map[[2]string]platform)
	for i := range c.nodes {
		p := c.nodes[i].node.GetPlatform()
		raw := [2]string{p.GetOs(), p.GetArchitecture()}
		norm, ok := seen[raw]
		if !ok {
			norm = newPlatform(raw[0], raw[1])
			seen[raw] = norm
		}
		c.nodes[i].platform = norm
	}
}

// fitsUsage reports whether node n passes the usage filters of g now.
func (g *group) fitsUsage(n *nodeState) bool {
	for _, f := range g.pipeline.usage {
		if !f.passes(n) {
			return false
		}
	}
	return true
}
