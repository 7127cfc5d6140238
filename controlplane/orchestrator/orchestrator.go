// Package orchestrator turns services into tasks. The leader runs it: it
// compares each service with its tasks and creates, replaces, stops and
// forgets tasks until they match, then places pending tasks on nodes with
// the scheduler. It reacts to the store's cache events and writes through
// the store; it never talks to agents.
package orchestrator

import (
	"context"
	"log/slog"
	"maps"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
	"github.com/berthproject/berth/controlplane/ipam"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
)

// historyLimit is how many finished tasks each slot keeps, for ps -a and
// the restart policy's attempt count.
const historyLimit = 5

// Orchestrator reconciles services and tasks.
type Orchestrator struct {
	store *store.Store
	cache *store.Cache
	log   *slog.Logger
	now   func() time.Time
	// index is what placement reads of the tasks, kept up to date by Run
	// from the cache's events.
	index taskIndex
	// readyNodes remembers which nodes were ready at the last full pass,
	// so auto-rebalance sees a node join or come back.
	readyNodes map[string]bool
	// metrics counts placements; nil counts nothing.
	metrics *Metrics
	// addrs gives tasks and services their addresses; Run rebuilds it
	// from the cache each term and keeps it up to date.
	addrs *ipam.Pool
	// failures are the services whose reconcile failed, set aside for a
	// backoff (see reconcileSafely).
	failures map[string]*serviceFailure
	// notReadyGrace is how long a node may stay not ready before its
	// tasks move (WithNotReadyGrace).
	notReadyGrace time.Duration
	// steady are the services a task event needs a look at its slot only
	// (see dirty.go).
	steady map[string]int64
	// beforeReconcile, when set, is called before each service's
	// reconcile: tests make it panic.
	beforeReconcile func(*berthv1.Service)
}

// New returns an orchestrator writing to s and reading c.
func New(s *store.Store, c *store.Cache, log *slog.Logger, opts ...Option) *Orchestrator {
	o := &Orchestrator{store: s, cache: c, log: log, now: time.Now, notReadyGrace: DefaultNotReadyGrace}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Run reconciles until ctx ends.
func (o *Orchestrator) Run(ctx context.Context) error {
	sub := o.cache.Subscribe()
	defer o.cache.Unsubscribe(sub)
	select {
	case <-o.cache.Synced():
	case <-ctx.Done():
		return nil
	}
	o.index.rebuild(o.cache.Tasks())
	o.rebuildAddresses()
	all := true
	dirty := dirtySet{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// due is when the timer fires. A pass over some services only knows
	// their restarts, so it may bring the timer forward, never push it
	// back: that would delay the other services' restarts.
	var due time.Time
	for {
		var wake time.Time
		var w writes
		if all {
			wake = o.reconcileAll(&w)
		} else if len(dirty) > 0 {
			wake = o.reconcileServices(dirty, &w)
		}
		err := o.placeAndCommit(ctx, &w)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Conflicts and lost connections heal on the next pass, which
			// the retry timer forces.
			o.log.Warn("orchestrator pass failed; retrying", "err", err)
			wake = o.now().Add(500 * time.Millisecond)
			all = true
		} else {
			all = false
		}
		dirty = dirtySet{}
		if !wake.IsZero() && (due.IsZero() || wake.Before(due)) {
			due = wake
			timer.Reset(max(wake.Sub(o.now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			// A full pass finds every restart still to come.
			all = true
			due = time.Time{}
		case <-sub.Ready():
		}
		events, overflowed := sub.Drain()
		if overflowed || !o.index.apply(events) {
			all = true
			o.index.rebuild(o.cache.Tasks())
			o.rebuildAddresses()
		} else {
			o.followAddresses(events)
		}
		for _, ev := range events {
			switch ev.Kind {
			case store.KindResync:
				all = true
			case store.KindNode:
				all = all || nodeChangeMatters(ev)
			case store.KindNetwork:
				// Tasks and virtual IPs may wait for it.
				all = true
			case store.KindService:
				svc := ev.Object.(*berthv1.Service)
				dirty.service(svc.GetMeta().GetId(), store.ServiceKey(svc.Namespace, svc.App, svc.Name))
			case store.KindTask:
				// Only its slot: see dirty.go.
				dirty.task(ev.Object.(*berthv1.Task))
			}
		}
	}
}

// reconcileAll reconciles every service and every task whose service is
// gone, returning when the next restart is due (zero for none).
func (o *Orchestrator) reconcileAll(w *writes) time.Time {
	o.autoRebalance(w)
	dirty := dirtySet{}
	for _, s := range o.cache.Services(store.ServicesPrefix) {
		dirty.service(s.GetMeta().GetId(), store.ServiceKey(s.Namespace, s.App, s.Name))
	}
	for _, t := range o.cache.Tasks() {
		if dirty[t.ServiceId] == nil {
			dirty.service(t.ServiceId, store.ServiceKey(t.Namespace, t.App, t.Service))
		}
	}
	return o.reconcileServices(dirty, w)
}

// reconcileServices adds to w what the dirty services need: a whole pass
// over each, or over its dirty slots only when it is steady.
func (o *Orchestrator) reconcileServices(dirty dirtySet, w *writes) time.Time {
	// Every node is read only when a whole pass needs them.
	var nodes []*berthv1.Node
	allNodes := func() []*berthv1.Node {
		if nodes == nil {
			nodes = o.cache.Nodes()
		}
		return nodes
	}
	now := o.now()
	var wake time.Time
	for id, ds := range dirty {
		svc, ok := o.cache.Service(ds.key)
		if !ok || svc.GetMeta().GetId() != id {
			// Deleted, or deleted and made again under a new ID.
			delete(o.failures, id)
			delete(o.steady, id)
			o.removeTasks(o.cache.ServiceTasks(id), w)
			o.addrs.Release(ipam.VIPOwner(id))
			continue
		}
		if until, aside := o.setAside(svc, now); aside {
			wake = earliest(wake, until)
			continue
		}
		o.keepEndpoint(svc, w)
		wake = earliest(wake, o.reconcileSafely(svc, w, func(own *writes) time.Time {
			if !ds.whole && o.isSteady(svc) {
				if at, ok := o.reconcileChanged(svc, ds.slots, own); ok {
					return at
				}
			}
			return o.reconcile(svc, o.cache.ServiceTasks(id), allNodes(), own)
		}))
	}
	return wake
}

// placeAndCommit places pending tasks, those in the cache and those the
// pass creates, and writes everything. New tasks are written already
// placed: one transaction fewer between a failure and its replacement.
func (o *Orchestrator) placeAndCommit(ctx context.Context, w *writes) error {
	o.place(w)
	rev, err := w.commit(ctx, o.store)
	if err != nil {
		o.recoverAddresses(ctx, rev)
		return err
	}
	if rev == 0 {
		return nil
	}
	o.metrics.placed(w.placed, o.now())
	// The next pass reads the cache: let it hold this one's writes.
	return o.cache.WaitRevision(ctx, rev)
}

// nodeChangeMatters reports whether a node event can change what services
// need: a node that joins or goes, or whose status, availability, labels,
// capacity or platform changed. The heartbeat times and image lists that
// agents refresh every few seconds start no pass.
func nodeChangeMatters(ev store.Event) bool {
	n, _ := ev.Object.(*berthv1.Node)
	old, _ := ev.Old.(*berthv1.Node)
	if ev.Action == store.ActionDelete || n == nil || old == nil {
		return true
	}
	return n.Status != old.Status || n.Availability != old.Availability ||
		nodestate.Reason(n) != nodestate.Reason(old) ||
		!maps.Equal(n.Labels, old.Labels) ||
		!proto.Equal(n.GetCapacity(), old.GetCapacity()) || !proto.Equal(n.GetPlatform(), old.GetPlatform())
}
