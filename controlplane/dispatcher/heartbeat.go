package dispatcher

import (
	"context"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Heartbeats keep a session alive; they do not rewrite the node record.
// Liveness is in memory: each session knows when its agent was last heard
// (session.lastHeard, read by nodehealth through Heard), and a session
// silent for silentHeartbeats periods ends and marks its node unreachable.
// Only sessions on the leader count, and only the leader judges nodes, so
// no other server needs the times.
//
// The record is written when something in it changes: the status (at
// register, by markUnreachable and by nodehealth), and what a heartbeat
// says changed (images, conditions). Node.last_heartbeat is set at each of those
// writes: while a node is ready its agent is connected and was heard
// within silentHeartbeats periods; once it is not, last_heartbeat is when
// it was last heard. A thousand idle nodes cost no writes at all.

// nodeReport is what heartbeats of one node said changed since the last
// write; nil fields did not change.
type nodeReport struct {
	at     time.Time
	images *nodeImages
	// conditions are all the node's conditions, when one changed
	// (conditionsChanged).
	conditions        []*berthv1.NodeCondition
	conditionsChanged bool
	// event is what the last apply made of the conditions (apply runs
	// again on a conflict, with the record read anew); nil for none.
	event *berthv1.Event
}

// nodeImages is a node's image list and the manifest digest of each
// image (nil from agents that do not send digests).
type nodeImages struct {
	names   []string
	digests map[string]string
}

// heartbeats accumulates the changes heartbeats report until the writer
// takes them.
type heartbeats struct {
	mu      sync.Mutex
	pending map[string]*nodeReport
	// changed is signalled when a change is pending: it is written at
	// once, since peers may wait to fetch an image from the node.
	changed chan struct{}
}

func newHeartbeats() *heartbeats {
	return &heartbeats{pending: map[string]*nodeReport{}, changed: make(chan struct{}, 1)}
}

// heartbeat notes what a heartbeat of node nodeID says changed, if
// anything. The session has already noted that the agent was heard.
func (h *heartbeats) heartbeat(nodeID string, hb *berthv1.AgentHeartbeat) {
	if !hb.GetImagesChanged() && !hb.GetConditionsChanged() {
		return
	}
	h.mu.Lock()
	p := h.pending[nodeID]
	if p == nil {
		p = &nodeReport{}
		h.pending[nodeID] = p
	}
	p.at = time.Now()
	if hb.GetImagesChanged() {
		p.images = &nodeImages{names: append([]string{}, hb.GetImages()...), digests: hb.GetImageDigests()}
	}
	if hb.GetConditionsChanged() {
		p.conditions, p.conditionsChanged = hb.GetConditions(), true
	}
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

func (h *heartbeats) take() map[string]*nodeReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.pending
	h.pending = map[string]*nodeReport{}
	return out
}

// writeHeartbeats writes what heartbeats said changed, every node that
// changed since the last write in one batch, until ctx ends.
func (d *Dispatcher) writeHeartbeats(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.beats.changed:
		}
		reports := d.beats.take()
		changes := make([]store.Change, 0, len(reports))
		for id, r := range reports {
			n, ok := d.cfg.Cache.Node(id)
			if !ok {
				continue
			}
			changes = append(changes, store.Change{Key: store.NodeKey(id), Current: n, Apply: func(o store.Object) bool {
				return r.apply(o.(*berthv1.Node))
			}})
		}
		rev, err := d.cfg.Store.Update(ctx, changes)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("writing what heartbeats changed", "nodes", len(changes), "err", err)
			}
			continue
		}
		for _, r := range reports {
			if r.event != nil {
				d.cfg.Store.RecordEvent(r.event)
			}
		}
		// The next batch reads the nodes from the cache: let it catch up
		// first, or it would conflict with this one.
		if err := d.cfg.Cache.WaitRevision(ctx, rev); err != nil && ctx.Err() == nil {
			d.log.Warn("waiting for the cache after writing heartbeats", "err", err)
		}
	}
}

// apply writes r into n, and reports whether n changed.
func (r *nodeReport) apply(n *berthv1.Node) bool {
	changed := false
	if r.images != nil {
		n.Images = r.images.names
		n.ImageDigests = imageDigests(*r.images, n.ImageDigests)
		changed = true
	}
	r.event = nil
	if r.conditionsChanged {
		old := &berthv1.Node{Meta: n.GetMeta(), Name: n.GetName(), Conditions: n.GetConditions()}
		n.Conditions = mergeConditions(n.GetConditions(), r.conditions)
		r.event = conditionEvent(old, n)
		changed = true
	}
	if changed {
		n.LastHeartbeat = timestamppb.New(r.at)
	}
	return changed
}

// imageDigests is the digest map to store with a node's new image list:
// the one the agent sent, or, from an agent that sends none, the stored
// one without the images the node no longer has.
func imageDigests(imgs nodeImages, stored map[string]string) map[string]string {
	if imgs.digests != nil {
		return imgs.digests
	}
	keep := map[string]string{}
	for _, name := range imgs.names {
		if d, ok := stored[name]; ok {
			keep[name] = d
		}
	}
	return keep
}
