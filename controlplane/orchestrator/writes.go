package orchestrator

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// writes gathers one pass's changes so they reach etcd in few transactions.
type writes struct {
	creates []*berthv1.Task
	changes []store.Change
	removes []*berthv1.Task
	seen    map[string]bool
	events  []*berthv1.Event
	// services gathers the changes to each service, by key: a transaction
	// may change a key once, so they are applied in one change.
	services     map[string][]func(*berthv1.Service) bool
	serviceOrder []*berthv1.Service
	// placed are the tasks this pass assigns to nodes, for the metrics.
	placed []*berthv1.Task
	// volumes are the volume records written with each new task, by
	// task ID; placements are the stored tasks assigned with volume
	// records; volumeKeys are the records the pass writes.
	volumes    map[string][]volumeRecord
	placements []placement
	volumeKeys map[string]bool
	// endpoints is set when a service's virtual IPs change: the services
	// are then written before the new tasks, so that no task is known
	// before the addresses of its service.
	endpoints bool
}

// changeService adds a change to svc, applied with the pass's other
// changes to it on the stored service.
func (w *writes) changeService(svc *berthv1.Service, apply func(*berthv1.Service) bool) {
	key := store.ServiceKey(svc.Namespace, svc.App, svc.Name)
	if w.services == nil {
		w.services = map[string][]func(*berthv1.Service) bool{}
	}
	if _, ok := w.services[key]; !ok {
		w.serviceOrder = append(w.serviceOrder, svc)
	}
	w.services[key] = append(w.services[key], apply)
}

// serviceChanges turns the gathered service changes into store changes.
func (w *writes) serviceChanges() []store.Change {
	var out []store.Change
	for _, svc := range w.serviceOrder {
		key := store.ServiceKey(svc.Namespace, svc.App, svc.Name)
		applies := w.services[key]
		out = append(out, store.Change{Key: key, Current: svc, Apply: func(o store.Object) bool {
			s := o.(*berthv1.Service)
			changed := false
			for _, apply := range applies {
				changed = apply(s) || changed
			}
			if changed && s.Meta != nil {
				s.Meta.UpdatedAt = timestamppb.Now()
			}
			return changed
		}})
	}
	return out
}

func (w *writes) once(t *berthv1.Task) bool {
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	id := t.GetMeta().GetId()
	if w.seen[id] {
		return false
	}
	w.seen[id] = true
	return true
}

func (w *writes) create(t *berthv1.Task) { w.creates = append(w.creates, t) }

func (w *writes) shutdown(t *berthv1.Task, why string) {
	if !w.once(t) {
		return
	}
	w.changes = append(w.changes, store.Change{Key: taskKey(t), Current: t, Apply: func(o store.Object) bool {
		t := o.(*berthv1.Task)
		if t.DesiredState == berthv1.TaskState_TASK_STATE_SHUTDOWN {
			return false
		}
		now := time.Now()
		t.DesiredState = berthv1.TaskState_TASK_STATE_SHUTDOWN
		t.GetMeta().UpdatedAt = timestamppb.New(now)
		if t.GetStatus().GetState() < berthv1.TaskState_TASK_STATE_ASSIGNED {
			// No agent has it, so none will ever report it stopped: it
			// ends here, or it would stay pending forever.
			taskstate.Set(t, berthv1.TaskState_TASK_STATE_SHUTDOWN, why, now)
			return true
		}
		if t.Status != nil && t.Status.Message == "" {
			t.Status.Message = why
		}
		return true
	}})
}

// adopt makes a task that runs the service's current spec under an older
// version number carry the current one (after a rollback to the spec it
// runs), so that everything reading versions sees it as up to date.
func (w *writes) adopt(t *berthv1.Task, version uint64) {
	if !w.once(t) {
		return
	}
	w.changes = append(w.changes, store.Change{Key: taskKey(t), Current: t, Apply: func(o store.Object) bool {
		t := o.(*berthv1.Task)
		if t.SpecVersion >= version {
			return false
		}
		t.SpecVersion = version
		return true
	}})
}

// orphan marks a task of a down node as given up.
func (w *writes) orphan(t *berthv1.Task, why string, now time.Time) {
	if !w.once(t) {
		return
	}
	w.changes = append(w.changes, store.Change{Key: taskKey(t), Current: t, Apply: func(o store.Object) bool {
		t := o.(*berthv1.Task)
		if !taskstate.Live(t) {
			return false
		}
		return taskstate.Set(t, berthv1.TaskState_TASK_STATE_ORPHANED, why, now)
	}})
}

func (w *writes) remove(t *berthv1.Task) {
	if w.once(t) {
		w.removes = append(w.removes, t)
	}
}

// commit writes everything and returns the revision of the last write (0
// when there was nothing to write).
func (w *writes) commit(ctx context.Context, s *store.Store) (int64, error) {
	var last int64
	changes := w.changes
	if w.endpoints {
		rev, err := s.Update(ctx, w.serviceChanges())
		if err != nil {
			return rev, err
		}
		last = rev
	} else {
		changes = append(changes, w.serviceChanges()...)
	}
	var removals []*store.Txn
	for start := 0; start < len(w.removes); start += store.MaxTxnOps {
		txn := &store.Txn{}
		for _, t := range w.removes[start:min(start+store.MaxTxnOps, len(w.removes))] {
			txn.Delete(taskKey(t), 0)
		}
		removals = append(removals, txn)
	}
	// The new tasks, the changes and the deletions do not wait for one
	// another: sent together, etcd syncs them to disk together, and a
	// replacement (created beside the orphaning of the task it replaces)
	// reaches its node a disk sync or two sooner.
	parts := []func() (int64, error){
		func() (int64, error) { return s.CommitAll(ctx, w.createTxns()) },
		func() (int64, error) { return s.Update(ctx, changes) },
		func() (int64, error) { return s.CommitAll(ctx, removals) },
	}
	revs := make([]int64, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, commit := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			revs[i], errs[i] = commit()
		}()
	}
	wg.Wait()
	last = max(last, slices.Max(revs))
	if err := errors.Join(errs...); err != nil {
		return last, err
	}
	w.recordEvents(s)
	return last, nil
}
