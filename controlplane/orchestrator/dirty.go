package orchestrator

import (
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/slot"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
)

// A pass costs in proportion to what changed. A task event marks only its
// slot dirty; a service event, a node change that matters or a timer marks
// whole services. A steady service (no rollout or rebalance under way, no
// outdated slot, as its last whole pass found and unchanged since) then has
// only its dirty slots looked at, read from the task index: a failed task
// of a service of 10,000 costs what it costs in a service of 10.

// dirtySet is what a pass must look at: by service ID.
type dirtySet map[string]*dirtyService

// dirtyService is what changed of one service.
type dirtyService struct {
	// key is the service's store key, when an event told it.
	key string
	// whole: every slot; otherwise only those in slots.
	whole bool
	slots map[string]bool
}

// service marks the whole service dirty.
func (d dirtySet) service(id, key string) {
	ds := d.get(id)
	ds.whole = true
	ds.key = key
}

// task marks the slot of t dirty.
func (d dirtySet) task(t *berthv1.Task) {
	ds := d.get(t.ServiceId)
	if ds.key == "" {
		ds.key = store.ServiceKey(t.Namespace, t.App, t.Service)
	}
	if ds.whole {
		return
	}
	if ds.slots == nil {
		ds.slots = map[string]bool{}
	}
	ds.slots[taskstate.Slot(t)] = true
}

func (d dirtySet) get(id string) *dirtyService {
	ds := d[id]
	if ds == nil {
		ds = &dirtyService{}
		d[id] = ds
	}
	return ds
}

// noteSteady remembers, by service ID, the version (store revision) of a
// service whose whole pass r found it steady: no rollout in progress, no
// outdated slot and no rebalance under way. Until the service changes, a
// task event needs a look at its slot only.
func (o *Orchestrator) noteSteady(svc *berthv1.Service, r *rollout) {
	id := svc.GetMeta().GetId()
	st := svc.GetRebalance().GetState()
	rebalancing := st == berthv1.RebalanceState_REBALANCE_STATE_REQUESTED || st == berthv1.RebalanceState_REBALANCE_STATE_MOVING
	if r.inProgress() || len(r.outdated) > 0 || rebalancing {
		delete(o.steady, id)
		return
	}
	if o.steady == nil {
		o.steady = map[string]int64{}
	}
	o.steady[id] = svc.GetMeta().GetVersion()
}

// isSteady reports whether svc is steady, as its last whole pass found.
func (o *Orchestrator) isSteady(svc *berthv1.Service) bool {
	v, ok := o.steady[svc.GetMeta().GetId()]
	return ok && v == svc.GetMeta().GetVersion()
}

// reconcileChanged reconciles only the slots keys of svc, a steady
// service, into w. It reports false, having written nothing, when the
// slots show the service is not steady after all (a slot is outdated): it
// needs a whole pass then.
func (o *Orchestrator) reconcileChanged(svc *berthv1.Service, keys map[string]bool, w *writes) (time.Time, bool) {
	now := o.now()
	id := svc.GetMeta().GetId()
	var tasks []*berthv1.Task
	for key := range keys {
		tasks = append(tasks, o.index.slotTasks(id, key)...)
	}
	// The nodes these slots concern: those of their tasks, and of a
	// global service's slots. A node the cache does not hold was removed.
	nodeIDs := map[string]bool{}
	for _, t := range tasks {
		if t.NodeId != "" {
			nodeIDs[t.NodeId] = true
		}
	}
	for key := range keys {
		if node, ok := strings.CutPrefix(key, "node:"); ok {
			nodeIDs[node] = true
		}
	}
	var nodes []*berthv1.Node
	for nid := range nodeIDs {
		if n, ok := o.cache.Node(nid); ok {
			nodes = append(nodes, n)
		}
	}
	var own writes
	tasks = orphanOnDownNodes(tasks, nodes, &own, now)
	groups := slot.Group(tasks)
	eligible := globalNodeIDs(svc, nodes)
	var wanted []slot.Slot
	for key := range keys {
		if s, ok := slot.Of(svc, groups, key, eligible); ok {
			wanted = append(wanted, s)
		}
	}
	r := newRollout(svc, nil, now)
	moving, movingWake := notReadyNodes(nodes, now, o.notReadyGrace)
	wake := earliest(movingWake, o.reconcileWanted(svc, r, wanted, groups, drainedNodes(nodes), moving, &own))
	if len(r.outdated) > 0 {
		return time.Time{}, false
	}
	w.absorb(&own)
	return wake, true
}
