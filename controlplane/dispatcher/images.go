package dispatcher

import (
	"maps"
	"slices"
	"sort"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
)

// maxImagePeers is how many peers an image source names: enough to get
// past a node that went away, few enough to keep assignments small.
const maxImagePeers = 3

// peer is a node that can serve images to others.
type peer struct {
	nodeID, address string
}

// peerIndex says which ready nodes hold each manifest digest, in
// node-name order. Nodes are indexed by digest only: a peer is asked for
// the digest the control plane pinned, never for a tag (what a node says
// a tag stands for is its own claim).
type peerIndex struct {
	byDigest map[string][]peer
}

// buildPeerIndex indexes nodes (in the order given) that are ready and
// serve their content.
func buildPeerIndex(nodes []*berthv1.Node) *peerIndex {
	idx := &peerIndex{byDigest: map[string][]peer{}}
	for _, n := range nodes {
		if n.Status != berthv1.NodeStatus_NODE_STATUS_READY || n.ContentAddress == "" {
			continue
		}
		p := peer{nodeID: n.GetMeta().GetId(), address: n.ContentAddress}
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
// self that hold manifest digest dgst (under any name: peers serve
// manifests by digest); none when dgst is empty.
func (idx *peerIndex) peers(self, dgst string) []string {
	var out []string
	for _, p := range idx.byDigest[dgst] {
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

// GrantFunc signs a pull grant: node may fetch digest from its peers.
type GrantFunc func(node, digest string) ([]byte, error)

// imageSources returns one source per distinct image of tasks, for node
// self: through auth (may be nil), the credential of its registry; and
// for each digest the tasks pin, a pull grant from grant and the peers
// that hold it. Without grant (nil) or a pinned digest, a source names no
// peers: peers serve only granted digests.
func imageSources(idx *peerIndex, self string, tasks []*berthv1.Task, auth func(string) *berthv1.ImageSource, grant GrantFunc) []*berthv1.ImageSource {
	byImage := map[string]*berthv1.ImageSource{}
	granted := map[string]bool{} // image + "@" + digest
	for _, t := range tasks {
		spec := t.GetSpec()
		image := spec.GetImage()
		if image == "" {
			continue
		}
		src := byImage[image]
		if src == nil {
			src = &berthv1.ImageSource{Image: image}
			if auth != nil {
				if cred := auth(image); cred != nil {
					src.Username, src.Secret, src.Insecure = cred.Username, cred.Secret, cred.Insecure
				}
			}
			byImage[image] = src
		}
		dgst := spec.GetImageDigest()
		if dgst == "" || grant == nil || granted[image+"@"+dgst] {
			continue
		}
		granted[image+"@"+dgst] = true
		peers := idx.peers(self, dgst)
		if len(peers) == 0 {
			continue
		}
		g, err := grant(self, dgst)
		if err != nil {
			continue
		}
		src.PullGrants = append(src.PullGrants, g)
		for _, p := range peers {
			if len(src.Peers) < maxImagePeers && !slices.Contains(src.Peers, p) {
				src.Peers = append(src.Peers, p)
			}
		}
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
		!maps.Equal(n.ImageDigests, old.ImageDigests)
}

// withImageSources adds to a the sources of its tasks' images.
func (d *Dispatcher) withImageSources(nodeID string, a *berthv1.Assignments) {
	if len(a.Tasks) == 0 {
		return
	}
	idx := d.peerIndex.get(d.cfg.Cache.Nodes)
	var grant GrantFunc
	if d.cfg.Authority != nil {
		grant = d.cfg.Authority.PullGrant
	}
	a.ImageSources = imageSources(idx, nodeID, a.Tasks, d.cfg.ImageAuth, grant)
	a.ImageTrust = imageTrust(a.Tasks, d.cfg.ImageTrust)
}

// imageTrust is the trust policy of each (namespace, image) of tasks that
// one covers, by trustOf, so the agent verifies the image before it runs
// the task with the policy in force when the task was sent.
func imageTrust(tasks []*berthv1.Task, trustOf func(namespace, image string) *berthv1.ImageTrust) []*berthv1.ImageTrust {
	if trustOf == nil {
		return nil
	}
	type pair struct{ ns, image string }
	seen := map[pair]bool{}
	var out []*berthv1.ImageTrust
	for _, t := range tasks {
		p := pair{t.GetNamespace(), t.GetSpec().GetImage()}
		if p.image == "" || seen[p] {
			continue
		}
		seen[p] = true
		if it := trustOf(p.ns, p.image); it != nil {
			out = append(out, it)
		}
	}
	return out
}
