package dispatcher

import (
	"maps"
	"slices"
	"sort"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/controlplane/store"
)

// maxImagePeers is how many peers an image source names: enough to get
// past a node that went away, few enough to keep assignments small.
const maxImagePeers = 3

// peer is a node that can serve images to others.
type peer struct {
	nodeID, address string
}

// peerIndex says which ready nodes hold each image, by normalized name
// and by manifest digest, in node-name order.
type peerIndex struct {
	byName, byDigest map[string][]peer
}

// buildPeerIndex indexes nodes (in the order given) that are ready and
// serve their content.
func buildPeerIndex(nodes []*berthv1.Node) *peerIndex {
	idx := &peerIndex{byName: map[string][]peer{}, byDigest: map[string][]peer{}}
	for _, n := range nodes {
		if n.Status != berthv1.NodeStatus_NODE_STATUS_READY || n.ContentAddress == "" {
			continue
		}
		p := peer{nodeID: n.GetMeta().GetId(), address: n.ContentAddress}
		for _, name := range n.Images {
			if norm, err := imageref.Normalize(name); err == nil {
				idx.byName[norm] = append(idx.byName[norm], p)
			}
		}
		seen := map[string]bool{}
		for _, d := range n.ImageDigests {
			if d != "" && !seen[d] {
				seen[d] = true
				idx.byDigest[d] = append(idx.byDigest[d], p)
			}
		}
	}
	return idx
}

// peers returns up to maxImagePeers content addresses of nodes other than
// self holding image: with manifest digest dgst when set (any name will
// do, peers serve manifests by digest), else by name.
func (idx *peerIndex) peers(self, image, dgst string) []string {
	var candidates []peer
	if dgst != "" {
		candidates = idx.byDigest[dgst]
	} else if norm, err := imageref.Normalize(image); err == nil {
		candidates = idx.byName[norm]
	}
	var out []string
	for _, p := range candidates {
		if p.nodeID == self {
			continue
		}
		out = append(out, p.address)
		if len(out) == maxImagePeers {
			break
		}
	}
	return out
}

// imageSources returns one source per distinct image of tasks, for node
// self: the peers that hold it and, through auth (may be nil), the
// credential of its registry.
func imageSources(idx *peerIndex, self string, tasks []*berthv1.Task, auth func(string) *berthv1.ImageSource) []*berthv1.ImageSource {
	byImage := map[string]*berthv1.ImageSource{}
	for _, t := range tasks {
		spec := t.GetSpec()
		image := spec.GetImage()
		if image == "" || byImage[image] != nil {
			continue
		}
		src := &berthv1.ImageSource{Image: image, Peers: idx.peers(self, image, spec.GetImageDigest())}
		if auth != nil {
			if cred := auth(image); cred != nil {
				src.Username, src.Secret, src.Insecure = cred.Username, cred.Secret, cred.Insecure
			}
		}
		byImage[image] = src
	}
	out := make([]*berthv1.ImageSource, 0, len(byImage))
	for _, s := range byImage {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out
}

// peerIndexCache rebuilds the peer index only after nodes changed.
type peerIndexCache struct {
	mu    sync.Mutex
	idx   *peerIndex
	dirty bool
}

// invalidate notes that a node changed.
func (c *peerIndexCache) invalidate() {
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
}

// get returns the index, rebuilt from nodes() when stale.
func (c *peerIndexCache) get(nodes func() []*berthv1.Node) *peerIndex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idx == nil || c.dirty {
		c.idx, c.dirty = buildPeerIndex(nodes()), false
	}
	return c.idx
}

// peersChanged reports whether a node event may change the peer index:
// heartbeat times alone, the most frequent change, do not.
func peersChanged(ev store.Event) bool {
	n, ok := ev.Object.(*berthv1.Node)
	old, oldOK := ev.Old.(*berthv1.Node)
	if !ok || !oldOK || ev.Action == store.ActionDelete {
		return true
	}
	return n.Status != old.Status || n.ContentAddress != old.ContentAddress ||
		!slices.Equal(n.Images, old.Images) || !maps.Equal(n.ImageDigests, old.ImageDigests)
}

// withImageSources adds to a the sources of its tasks' images.
func (d *Dispatcher) withImageSources(nodeID string, a *berthv1.Assignments) {
	if len(a.Tasks) == 0 {
		return
	}
	idx := d.peerIndex.get(d.cfg.Cache.Nodes)
	a.ImageSources = imageSources(idx, nodeID, a.Tasks, d.cfg.ImageAuth)
}
