package scheduler

import "strings"

// Placement preferences spread a service's tasks evenly over the values of
// node labels. With preferences zone then rack, tasks are first balanced
// over the zones, then, within a zone, over its racks, then over the nodes
// of the rack. Nodes without the label form one more group (value "").
//
// Ranking nodes by the tuple (tasks in the node's zone, tasks in the node's
// zone and rack, tasks on the node) and placing one task at a time gives
// that balance: the emptiest zone wins first, then the emptiest rack in it.
// Tasks on every node of the snapshot count, including nodes this task
// cannot use: a zone whose nodes are full still holds its share.

// prefBuckets numbers the groups of nodes at each preference level.
type prefBuckets struct {
	// levels[k][i] is the bucket of node i at level k: nodes share a bucket
	// when they agree on the values of the first k+1 labels.
	levels [][]int32
	// sizes[k] is the number of buckets at level k.
	sizes []int
	// masks[b] is the bitset of the nodes in leaf bucket b, made on first
	// use.
	masks [][]uint64
}

// leafMasks returns the bitset of nodes of each leaf bucket.
func (b *prefBuckets) leafMasks(words int) [][]uint64 {
	if b.masks != nil {
		return b.masks
	}
	leaf := b.levels[len(b.levels)-1]
	b.masks = make([][]uint64, b.sizes[len(b.levels)-1])
	for k := range b.masks {
		b.masks[k] = make([]uint64, words)
	}
	for i, k := range leaf {
		setBit(b.masks[k], i)
	}
	return b.masks
}

func newPrefBuckets(nodes []nodeState, labels []string) *prefBuckets {
	type key struct {
		parent int32
		value  string
	}
	b := &prefBuckets{levels: make([][]int32, len(labels)), sizes: make([]int, len(labels))}
	parent := make([]int32, len(nodes)) // level -1: one bucket holding all
	for lvl, label := range labels {
		ids := make(map[key]int32)
		level := make([]int32, len(nodes))
		for i := range nodes {
			k := key{parent[i], nodes[i].node.GetLabels()[label]}
			id, ok := ids[k]
			if !ok {
				id = int32(len(ids))
				ids[k] = id
			}
			level[i] = id
		}
		b.levels[lvl], b.sizes[lvl] = level, len(ids)
		parent = level
	}
	return b
}

// spreadCounts counts one service's tasks per preference bucket.
type spreadCounts struct {
	buckets *prefBuckets
	// counts[k][b] is the number of the service's tasks in bucket b of
	// level k.
	counts [][]int
}

// add records delta tasks of the service on node i.
func (s *spreadCounts) add(i int, delta int) {
	for lvl, level := range s.buckets.levels {
		s.counts[lvl][level[i]] += delta
	}
}

// spreadFor returns the counts of the service's tasks over the buckets of
// labels, made from the per-node counts on first use.
func (c *cluster) spreadFor(s *serviceState, labels []string) *spreadCounts {
	labelsKey := strings.Join(labels, "\x00")
	b, ok := c.buckets[labelsKey]
	if !ok {
		b = newPrefBuckets(c.nodes, labels)
		c.buckets[labelsKey] = b
	}
	for _, sc := range s.spreads {
		if sc.buckets == b {
			return sc
		}
	}
	sc := &spreadCounts{buckets: b, counts: make([][]int, len(labels))}
	for lvl := range labels {
		sc.counts[lvl] = make([]int, b.sizes[lvl])
	}
	for i, n := range s.tasks {
		if n > 0 {
			sc.add(i, int(n))
		}
	}
	s.spreads = append(s.spreads, sc)
	return sc
}
