package scheduler

import (
	"math"
	"math/bits"
	"slices"
)

// A node's rank for a group is a short tuple of words compared in order,
// smallest first; its last word ends with the node's index, so no two
// nodes tie and the index can be read back from the rank.
//
// Spread:  [failed | bucket counts..., service tasks<<1 | no image, tasks<<32 | index]
// Binpack: [failed | emptiness, (MaxInt32-tasks)<<32 | no image<<31 | index]
//
// "failed" is the top bit of the first word, set on nodes where the
// service failed repeatedly, so they rank after every other node.
//
// Under spread every part of a rank only grows while a plan is made (tasks
// are only ever added), which lets a heap of ranks be revalidated lazily:
// a stored rank is never worse than the node's current one, so when the
// top of the heap still holds its current rank, it is the best node. Under
// binpack ranks improve as nodes fill; there, every placement is logged
// and each group pushes the fresh ranks of the nodes placed on since it
// last looked, discarding entries that no longer hold.

const indexMask = 1<<31 - 1

// rankLen is the number of words in a rank of g.
func rankLen(g *group) int {
	if g.spread != nil && !g.binpack {
		return len(g.spread.counts) + 2
	}
	return 2
}

// rank writes node i's rank for the next task of g into k.
func (c *cluster) rank(g *group, i int, k []uint64) {
	if g.binpack {
		n := &c.nodes[i]
		noImage := uint64(1)
		if g.hasImage != nil && hasBit(g.hasImage, i) {
			noImage = 0
		}
		k[0] = c.failedBit(g, i) | (math.MaxInt64 - math.Float64bits(n.reservedShare()))
		k[1] = (math.MaxInt32-uint64(min(n.tasks, math.MaxInt32)))<<32 | noImage<<31 | uint64(i)
		return
	}
	if g.spread == nil {
		c.nodeRank(g, i, k)
		return
	}
	levels := len(g.spread.counts)
	c.nodeRank(g, i, k[levels:])
	failed := k[levels] & (1 << 63)
	k[levels] &^= failed
	for lvl, buckets := range g.spread.buckets.levels {
		k[lvl] = uint64(g.spread.counts[lvl][buckets[i]])
	}
	k[0] |= failed
}

// nodeRank writes the spread rank of node i without preference counts:
// the rank within one preference bucket.
func (c *cluster) nodeRank(g *group, i int, k []uint64) {
	noImage := uint64(1)
	if g.hasImage != nil && hasBit(g.hasImage, i) {
		noImage = 0
	}
	k[0] = c.failedBit(g, i) | uint64(g.service.tasks[i])<<1 | noImage
	k[1] = uint64(min(c.nodes[i].tasks, math.MaxInt32))<<32 | uint64(i)
}

// failedBit is the top bit of a rank's first word when the service of g
// failed repeatedly on node i.
func (c *cluster) failedBit(g *group, i int) uint64 {
	if f := g.service.failures; f != nil && f[i] >= repeatedFailures {
		return 1 << 63
	}
	return 0
}

func rankLess(a, b []uint64) bool {
	for k := range a {
		if a[k] != b[k] {
			return a[k] < b[k]
		}
	}
	return false
}

func nodeOf(rank []uint64) int { return int(rank[len(rank)-1] & indexMask) }

// ranking is a group's ordered view of its candidate nodes.
//
// Spread splits the candidates into leaf buckets (nodes agreeing on every
// preference label; one bucket of all candidates without preferences).
// Within a bucket, a node where the service has no task and did not fail
// ("untouched") ranks by image, total tasks and index alone, which the
// cluster's load levels give in order for every group at once: finding a
// bucket's best untouched node is a scan of a few words. Only the nodes
// the service touched need a heap, consulted once no untouched node is
// left in the bucket. The pick is then the best of the buckets' bests, by
// full rank. Bucket counts stay out of the heaps, since one placement
// changes them for every node of a bucket.
//
// Binpack keeps one heap of all candidates.
type ranking struct {
	built bool
	// heap holds every candidate of a binpack group.
	heap rankHeap
	// buckets are a spread group's leaf buckets; live lists those that may
	// still hold a node that fits.
	buckets []bucketRank
	live    []int32
	// excluded marks the nodes the untouched scans skip: touched (then in
	// their bucket's heap) or failing a usage filter (for good: usage only
	// grows while a plan is made).
	excluded []uint64
	// scratch and best hold ranks being compared.
	scratch, best []uint64
	// seen is how many placements of the call the binpack heap reflects.
	seen int
}

// bucketRank is the ranking state of one leaf bucket of a spread group.
type bucketRank struct {
	// mask is the bucket's nodes; nil when the bucket holds every node.
	mask []uint64
	// heap holds the bucket's touched candidates, by nodeRank.
	heap rankHeap
	// scanned is set once no untouched node of the bucket is left to scan
	// (from the start when there are too many buckets to scan each).
	scanned bool
}

// maxScannedBuckets bounds the buckets a spread group scans one by one;
// with more (a preference label that differs on most nodes), each bucket
// keeps a heap of all its candidates instead.
const maxScannedBuckets = 64

// pick returns the index of the best node for the next task of g, or -1
// and the reason no node fits.
func (c *cluster) pick(g *group) (int, string) {
	c.prepare(g, true)
	r := &g.ranking
	if !r.built {
		c.buildRanking(g)
	}
	var i int
	if g.binpack {
		c.catchUp(g)
		i = c.validTop(g, &r.heap)
	} else {
		i = c.pickSpread(g)
	}
	if i >= 0 {
		return i, ""
	}
	return -1, c.explain(g)
}

func (c *cluster) buildRanking(g *group) {
	r := &g.ranking
	r.built = true
	stride := rankLen(g)
	r.scratch, r.best = make([]uint64, stride), make([]uint64, stride)
	if g.binpack {
		r.heap = rankHeap{stride: 2}
		c.fillHeap(g)
		return
	}
	if g.spread == nil {
		r.buckets = []bucketRank{{heap: rankHeap{stride: 2}}}
		r.live = []int32{0}
		r.excluded = make([]uint64, c.words)
		return
	}
	b := g.spread.buckets
	leaf := b.levels[len(b.levels)-1]
	r.buckets = make([]bucketRank, b.sizes[len(b.levels)-1])
	scan := len(r.buckets) <= maxScannedBuckets
	if scan {
		r.excluded = make([]uint64, c.words)
		masks := b.leafMasks(c.words)
		for k := range r.buckets {
			r.buckets[k].mask = masks[k]
		}
	}
	for k := range r.buckets {
		r.buckets[k].heap.stride = 2
		r.buckets[k].scanned = !scan
	}
	seen := make([]bool, len(r.buckets))
	for _, i := range g.cands.list {
		if !seen[leaf[i]] {
			seen[leaf[i]] = true
			r.live = append(r.live, leaf[i])
		}
		if !scan {
			h := &r.buckets[leaf[i]].heap
			h.keys = append(h.keys, 0, 0)
			c.nodeRank(g, int(i), h.at(h.len()-1))
		}
	}
	slices.Sort(r.live)
	if !scan {
		for k := range r.buckets {
			r.buckets[k].heap.init()
		}
	}
}

// fillHeap puts every candidate of a binpack group in its heap with its
// current rank.
func (c *cluster) fillHeap(g *group) {
	r := &g.ranking
	h := &r.heap
	if h.keys == nil && len(c.freeRanks) > 0 {
		h.keys = c.freeRanks[len(c.freeRanks)-1]
		c.freeRanks = c.freeRanks[:len(c.freeRanks)-1]
	}
	h.keys = slices.Grow(h.keys[:0], len(g.cands.list)*h.stride)[:len(g.cands.list)*h.stride]
	for k, i := range g.cands.list {
		c.rank(g, int(i), h.at(k))
	}
	h.init()
	r.seen = len(c.placed)
}

// pickSpread returns the best node over the bests of g's buckets, or -1
// when no bucket holds a node that fits.
func (c *cluster) pickSpread(g *group) int {
	r := &g.ranking
	best := -1
	live := r.live[:0]
	for _, b := range r.live {
		i := c.bucketBest(g, &r.buckets[b])
		if i < 0 {
			continue // nothing in the bucket will fit again
		}
		live = append(live, b)
		if len(r.live) == 1 {
			best = i
			break
		}
		c.rank(g, i, r.scratch)
		if best < 0 || rankLess(r.scratch, r.best) {
			best = i
			copy(r.best, r.scratch)
		}
	}
	r.live = live
	return best
}

// bucketBest returns the best node of one bucket that fits, or -1.
func (c *cluster) bucketBest(g *group, b *bucketRank) int {
	if !b.scanned {
		if i := c.scanUntouched(g, b); i >= 0 {
			return i
		}
		b.scanned = true
	}
	return c.validTop(g, &b.heap)
}

// scanUntouched scans the untouched candidates of bucket b from the least
// loaded level up, those holding the image first, and returns the first
// that passes the usage filters, or -1 when none is left. Touched nodes it
// meets go to the bucket's heap.
func (c *cluster) scanUntouched(g *group, b *bucketRank) int {
	r := &g.ranking
	cands := g.cands.bits
	passes := 1
	if g.hasImage != nil {
		passes = 2
	}
	for pass := range passes {
		for t := c.load.low; t < len(c.load.sets); t++ {
			if c.load.sizes[t] == 0 {
				continue
			}
			for w, level := range c.load.sets[t] {
				word := level & cands[w] &^ r.excluded[w]
				if b.mask != nil {
					word &= b.mask[w]
				}
				if g.hasImage != nil {
					if pass == 0 {
						word &= g.hasImage[w]
					} else {
						word &^= g.hasImage[w]
					}
				}
				for word != 0 {
					i := w*64 + bits.TrailingZeros64(word)
					word &= word - 1
					if c.touched(g, i) {
						setBit(r.excluded, i)
						b.heap.keys = append(b.heap.keys, 0, 0)
						c.nodeRank(g, i, b.heap.at(b.heap.len()-1))
						b.heap.up(b.heap.len() - 1)
						continue
					}
					if !g.fitsUsage(&c.nodes[i]) {
						setBit(r.excluded, i)
						continue
					}
					return i
				}
			}
		}
	}
	return -1
}

// touched reports whether the service of g has a task on node i or failed
// there repeatedly, which ranks the node after every untouched one.
func (c *cluster) touched(g *group, i int) bool {
	s := g.service
	return s.tasks[i] > 0 || (s.failures != nil && s.failures[i] >= repeatedFailures)
}

// validTop returns the node at the top of h once its rank there is
// current and it passes the usage filters of g, or -1 when h empties.
// Heaps of spread groups hold only ranks that never got better, so a stale
// top is re-ranked in place; a binpack heap holds a fresh entry for every
// node that changed, so a stale top is dropped.
func (c *cluster) validTop(g *group, h *rankHeap) int {
	k := g.ranking.scratch[:h.stride]
	for h.len() > 0 {
		top := h.at(0)
		i := nodeOf(top)
		if g.binpack {
			c.rank(g, i, k)
		} else {
			c.nodeRank(g, i, k)
		}
		if !slices.Equal(k, top) {
			if g.binpack {
				h.pop()
			} else {
				h.replaceTop(k)
			}
			continue
		}
		if !g.fitsUsage(&c.nodes[i]) {
			h.pop()
			continue
		}
		return i
	}
	return -1
}

// catchUp pushes the fresh rank of every candidate placed on since the
// binpack heap of g last looked, or refills the heap when that is cheaper.
func (c *cluster) catchUp(g *group) {
	r := &g.ranking
	news := c.placed[r.seen:]
	if len(news) == 0 {
		return
	}
	if len(news) > len(g.cands.list) {
		c.fillHeap(g)
		return
	}
	for _, i := range news {
		if hasBit(g.cands.bits, int(i)) {
			c.rank(g, int(i), r.scratch)
			r.heap.push(r.scratch)
		}
	}
	r.seen = len(c.placed)
}

// explain says why no candidate of g takes a task now. Every candidate
// fails a usage filter then; each is counted under the first it fails.
func (c *cluster) explain(g *group) string {
	if g.reason != "" && g.reasonAt == len(c.placed) {
		return g.reason
	}
	clear(g.usageFailures)
	for _, i := range g.cands.list {
		n := &c.nodes[i]
		for k, f := range g.pipeline.usage {
			if !f.passes(n) {
				g.usageFailures[k]++
				break
			}
		}
	}
	g.reason, g.reasonAt = noSuitableNode(g, g.usageFailures), len(c.placed)
	return g.reason
}

// rankHeap is a binary min-heap of ranks stored flat, stride words each.
type rankHeap struct {
	stride int
	keys   []uint64
}

func (h *rankHeap) len() int              { return len(h.keys) / h.stride }
func (h *rankHeap) at(i int) []uint64     { return h.keys[i*h.stride : (i+1)*h.stride : (i+1)*h.stride] }
func (h *rankHeap) less(i, j int) bool    { return rankLess(h.at(i), h.at(j)) }
func (h *rankHeap) push(rank []uint64)    { h.keys = append(h.keys, rank...); h.up(h.len() - 1) }
func (h *rankHeap) replaceTop(r []uint64) { copy(h.at(0), r); h.down(0) }

func (h *rankHeap) swap(i, j int) {
	a, b := h.at(i), h.at(j)
	for k := range a {
		a[k], b[k] = b[k], a[k]
	}
}

func (h *rankHeap) pop() {
	last := h.len() - 1
	h.swap(0, last)
	h.keys = h.keys[:last*h.stride]
	h.down(0)
}

func (h *rankHeap) init() {
	for i := h.len()/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *rankHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

func (h *rankHeap) down(i int) {
	n := h.len()
	for {
		child := 2*i + 1
		if child >= n {
			return
		}
		if right := child + 1; right < n && h.less(right, child) {
			child = right
		}
		if !h.less(child, i) {
			return
		}
		h.swap(i, child)
		i = child
	}
}
