package orchestrator

import (
	"fmt"
	"runtime/debug"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
)

// A bug or an absurd spec in one service must not take the leader down:
// every new leader would reconcile the same service and crash the same
// way, and the cluster would have no control plane at all. So a service
// whose reconcile panics is set aside (an event says why) and tried again
// after a backoff, while every other service goes on as usual.

// The backoff of a service whose reconcile failed: doubled per failure in
// a row, from the first delay up to the cap.
const (
	failureBackoffFirst = time.Second
	failureBackoffMax   = 5 * time.Minute
)

// serviceFailure is a service whose reconcile failed.
type serviceFailure struct {
	// times counts the failures in a row.
	times int
	// until is when the service is tried again.
	until time.Time
	// version is the service's stored version that failed: a change to
	// the service (a fix) is tried at once.
	version int64
}

// failureBackoff is the delay after n failures in a row.
func failureBackoff(n int) time.Duration {
	d := failureBackoffFirst
	for i := 1; i < n && d < failureBackoffMax; i++ {
		d *= 2
	}
	return min(d, failureBackoffMax)
}

// setAside reports whether svc waits after a failure, and until when.
func (o *Orchestrator) setAside(svc *berthv1.Service, now time.Time) (time.Time, bool) {
	f, ok := o.failures[svc.GetMeta().GetId()]
	if !ok || !now.Before(f.until) || f.version != svc.GetMeta().GetVersion() {
		return time.Time{}, false
	}
	return f.until, true
}

// reconcileSafely runs pass, one service's reconcile, into w only when it
// completes: a panic writes nothing of that service's pass but an event,
// and sets the service aside for a backoff. It returns when the service
// needs another look.
func (o *Orchestrator) reconcileSafely(svc *berthv1.Service, w *writes, pass func(*writes) time.Time) (wake time.Time) {
	id := svc.GetMeta().GetId()
	name := svc.Namespace + "/" + svc.App + "/" + svc.Name
	now := o.now()
	if limit := validation.MaxReplicas(o.cache.Settings()); svc.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL && svc.GetSpec().GetReplicas() > limit {
		// Stored before the cap, or under a higher one: running it could
		// exhaust the leader's memory, which no recover catches.
		return o.failed(svc, w, now, fmt.Sprintf("it asks for %d replicas, over the cluster's cap of %d; its tasks are left as they are until it is scaled down (berth scale %s/%s=N)",
			svc.GetSpec().GetReplicas(), limit, svc.App, svc.Name))
	}
	var own writes
	defer func() {
		if p := recover(); p != nil {
			o.log.Error("reconcile of a service panicked", "service", name, "panic", p, "stack", string(debug.Stack()))
			delete(o.steady, id)
			wake = o.failed(svc, w, now, fmt.Sprint(p))
			return
		}
		delete(o.failures, id)
		w.absorb(&own)
	}()
	if o.beforeReconcile != nil {
		o.beforeReconcile(svc)
	}
	return pass(&own)
}

// failed sets svc aside after a failed reconcile, with an event that says
// why and when it is tried again, and returns that time.
func (o *Orchestrator) failed(svc *berthv1.Service, w *writes, now time.Time, why string) time.Time {
	id := svc.GetMeta().GetId()
	if o.failures == nil {
		o.failures = map[string]*serviceFailure{}
	}
	f := o.failures[id]
	if f == nil {
		f = &serviceFailure{}
		o.failures[id] = f
	}
	f.times++
	f.version = svc.GetMeta().GetVersion()
	delay := failureBackoff(f.times)
	f.until = now.Add(delay)
	w.events = append(w.events, serviceEvent(svc, "reconcile-failed",
		fmt.Sprintf("reconcile of service %s failed: %s; trying again in %s (failure %d in a row)", svc.Name, why, delay, f.times)))
	return f.until
}

// absorb adds the writes of one service's pass to w.
func (w *writes) absorb(o *writes) {
	w.creates = append(w.creates, o.creates...)
	w.changes = append(w.changes, o.changes...)
	w.removes = append(w.removes, o.removes...)
	w.events = append(w.events, o.events...)
	for id := range o.seen {
		if w.seen == nil {
			w.seen = map[string]bool{}
		}
		w.seen[id] = true
	}
	for _, svc := range o.serviceOrder {
		for _, apply := range o.services[store.ServiceKey(svc.Namespace, svc.App, svc.Name)] {
			w.changeService(svc, apply)
		}
	}
	w.endpoints = w.endpoints || o.endpoints
}
