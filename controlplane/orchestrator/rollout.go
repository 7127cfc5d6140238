package orchestrator

import (
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/api/slot"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/api/volume"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// A rolling update replaces the tasks of older spec versions slot by slot,
// by the service's update_config (or rollback_config while rolling back):
//
//   - at most parallelism slots are in flight at once (0: all at once): a
//     slot is in flight from the moment its old task is told to stop, or
//     its new task is created, until one task of the current version runs
//     alone in it, healthy when it has a check;
//   - a slot's replacement starts delay after the last new task became
//     ready;
//   - stop-first stops the old task, then starts the new one; start-first
//     starts the new one beside the old, which stops once the new one is
//     ready (or at once, when no node can take the new one beside it);
//   - a new task that fails before it is ready, or within monitor after,
//     counts against the update; when the failures exceed max_failure_ratio
//     of the service's slots, failure_action pauses the update, goes on, or
//     rolls the service back to its previous spec;
//   - the update completes monitor after the last slot is done, when no
//     new task failed meanwhile.
//
// The state lives in the tasks (spec versions, states, history) and in the
// service's update_status, so a new leader carries on where the last one
// stopped.

// Defaults of an unset update_config, as Docker has them.
const (
	defaultMonitor = 5 * time.Second
)

// updateConfig is an update_config with its defaults filled in.
type updateConfig struct {
	parallelism     int // 0: all at once
	delay, monitor  time.Duration
	action          berthv1.UpdateFailureAction
	maxFailureRatio float64
	startFirst      bool
}

func effectiveConfig(c *berthv1.UpdateConfig) updateConfig {
	if c == nil {
		return updateConfig{parallelism: 1, monitor: defaultMonitor, action: berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE}
	}
	cfg := updateConfig{
		parallelism:     int(c.GetParallelism()),
		delay:           c.GetDelay().AsDuration(),
		monitor:         defaultMonitor,
		action:          c.GetFailureAction(),
		maxFailureRatio: c.GetMaxFailureRatio(),
		startFirst:      c.GetOrder() == berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST,
	}
	if c.Monitor != nil {
		cfg.monitor = c.GetMonitor().AsDuration()
	}
	if cfg.action == berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_UNSPECIFIED {
		cfg.action = berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	}
	return cfg
}

// rollout is one pass's view of a service's update: what the slots need,
// gathered by reconcile, then acted on by step.
type rollout struct {
	svc         *berthv1.Service
	cfg         updateConfig
	rollingBack bool
	now         time.Time

	// outdated are the slots whose only task runs an older spec.
	outdated []outdatedSlot
	// inFlight counts the slots not yet settled on a ready task of the
	// current version.
	inFlight int
	// slots is how many slots the service wants.
	slots int
	// lastReady is when the newest task of the update became ready.
	lastReady time.Time
	// failed are the update's new tasks that count as failures.
	failed []*berthv1.Task
}

// outdatedSlot is a slot to update: its task of an older version, and the
// slot's finished tasks, newest first.
type outdatedSlot struct {
	key   string
	task  *berthv1.Task
	ended []*berthv1.Task
}

func newRollout(svc *berthv1.Service, tasks []*berthv1.Task, now time.Time) *rollout {
	st := svc.GetUpdateStatus()
	r := &rollout{svc: svc, now: now}
	r.rollingBack = st.GetState() == berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED ||
		st.GetState() == berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED
	if r.rollingBack {
		r.cfg = effectiveConfig(svc.GetSpec().GetRollbackConfig())
	} else {
		r.cfg = effectiveConfig(svc.GetSpec().GetUpdateConfig())
	}
	if volume.HasNamed(svc.GetSpec()) {
		// A slot's volume is on one node: start-first would run the old
		// and the new task on the same data at once (two databases on
		// one set of files).
		r.cfg.startFirst = false
	}
	started := st.GetStartedAt().AsTime()
	if st == nil {
		return r
	}
	for _, t := range tasks {
		if t.SpecVersion != svc.SpecVersion || t.GetMeta().GetCreatedAt().AsTime().Before(started) {
			continue
		}
		ranAt := runningSince(t)
		if ready(t) && ranAt.After(r.lastReady) {
			r.lastReady = ranAt
		}
		if r.failedDuringUpdate(t, ranAt) {
			r.failed = append(r.failed, t)
		}
	}
	return r
}

// failedDuringUpdate reports whether t, a task of the update, failed
// before it was ready or within the monitor period after it started.
func (r *rollout) failedDuringUpdate(t *berthv1.Task, ranAt time.Time) bool {
	st := t.GetStatus()
	if t.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING {
		return false
	}
	switch st.GetState() {
	case berthv1.TaskState_TASK_STATE_FAILED, berthv1.TaskState_TASK_STATE_REJECTED:
	default:
		return false
	}
	return ranAt.IsZero() || st.GetTimestamp().AsTime().Sub(ranAt) <= r.cfg.monitor
}

// current reports whether t runs the service's current spec: its version,
// or an older version with the same spec (a rollback returns to a spec
// that tasks never updated still run).
func (r *rollout) current(t *berthv1.Task) bool {
	return t.SpecVersion == r.svc.SpecVersion || proto.Equal(t.GetSpec(), r.svc.GetSpec())
}

// ready reports whether t runs and, when it has a health check, passes it:
// the slot model's Ready, by the spec the task runs.
func ready(t *berthv1.Task) bool { return slot.Ready(t.GetSpec(), t) }

// runningSince is when t last reached running; zero when it never did.
func runningSince(t *berthv1.Task) time.Time {
	var at time.Time
	for _, h := range t.GetHistory() {
		if h.GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			at = h.GetAt().AsTime()
		}
	}
	return at
}

// updating reports whether the update may replace slots now.
func (r *rollout) updating() bool {
	switch r.svc.GetUpdateStatus().GetState() {
	case berthv1.UpdateState_UPDATE_STATE_PAUSED, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED:
		return false
	}
	return true
}

// inProgress reports whether the update status says an update runs.
func (r *rollout) inProgress() bool {
	switch r.svc.GetUpdateStatus().GetState() {
	case berthv1.UpdateState_UPDATE_STATE_UPDATING, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED:
		return true
	}
	return false
}

// step acts on what reconcile gathered: the failure action, the next
// slots' replacements, the update's completion. It returns when it needs
// another look (a delay, the monitor period, a restart backoff).
func (o *Orchestrator) step(r *rollout, w *writes) time.Time {
	if r.inProgress() && r.tooManyFailures() {
		why := fmt.Sprintf("%s failed: %s", describeFailed(r.failed[len(r.failed)-1]), taskstate.EndReason(r.failed[len(r.failed)-1].GetStatus()))
		switch {
		case r.cfg.action == berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK && !r.rollingBack:
			if o.rollBack(r, w, why) {
				return time.Time{}
			}
			o.pause(r, w, why+"; no earlier version to roll back to")
			return time.Time{}
		case r.cfg.action != berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE:
			o.pause(r, w, why)
			return time.Time{}
		}
	}
	if !r.updating() {
		return time.Time{}
	}
	if len(r.outdated) > 0 {
		if next := r.lastReady.Add(r.cfg.delay); r.cfg.delay > 0 && next.After(r.now) {
			return next
		}
		budget := len(r.outdated)
		if r.cfg.parallelism > 0 {
			budget = min(budget, r.cfg.parallelism-r.inFlight)
		}
		var wake time.Time
		for _, s := range r.outdated[:max(budget, 0)] {
			if at := o.replaceOutdated(r, s, w); !at.IsZero() && (wake.IsZero() || at.Before(wake)) {
				wake = at
			}
		}
		return wake
	}
	if r.inFlight > 0 || !r.inProgress() {
		return time.Time{}
	}
	if done := r.lastReady.Add(r.cfg.monitor); done.After(r.now) {
		return done
	}
	o.complete(r, w)
	return time.Time{}
}

// tooManyFailures reports whether the update's failures exceed its
// max_failure_ratio of the service's slots.
func (r *rollout) tooManyFailures() bool {
	if len(r.failed) == 0 {
		return false
	}
	return float64(len(r.failed))/float64(max(r.slots, 1)) > r.cfg.maxFailureRatio
}

// replaceOutdated starts the replacement of one outdated slot: start-first
// when the order says so and the old task runs, stop-first otherwise. A
// slot whose last new task failed waits for the restart policy's backoff.
func (o *Orchestrator) replaceOutdated(r *rollout, s outdatedSlot, w *writes) time.Time {
	if len(s.ended) > 0 && r.current(s.ended[0]) {
		d := decideRestart(r.svc.GetSpec().GetRestartPolicy(), s.ended, r.now)
		if !d.restart {
			return time.Time{}
		}
		if d.at.After(r.now) {
			return d.at
		}
	}
	why := fmt.Sprintf("replaced by version %d of the service", r.svc.SpecVersion)
	if r.cfg.startFirst && s.task.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
		w.create(replacement(r.svc, s.task, berthv1.ReplaceCause_REPLACE_CAUSE_UPDATE, r.now))
		return time.Time{}
	}
	w.shutdown(s.task, why)
	return time.Time{}
}

// replacement is a new task for old's slot, started beside it: old stops
// once the new one is ready.
func replacement(svc *berthv1.Service, old *berthv1.Task, cause berthv1.ReplaceCause, now time.Time) *berthv1.Task {
	node := ""
	if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		node = old.NodeId
	}
	t := newTask(svc, old.Slot, node, now)
	t.Replaces = old.GetMeta().GetId()
	t.ReplaceCause = cause
	return t
}

// describeFailed names a failed task of an update for messages: "task
// web.2 (4f2a9c)".
func describeFailed(t *berthv1.Task) string {
	id := t.GetMeta().GetId()
	if len(id) > 12 {
		id = id[:12]
	}
	return fmt.Sprintf("task %s (%s)", store.TaskName(t), id)
}

// rollBack returns the service to its previous spec. It reports false when
// there is none.
func (o *Orchestrator) rollBack(r *rollout, w *writes, why string) bool {
	if len(r.svc.GetRevisions()) == 0 {
		return false
	}
	version := r.svc.SpecVersion
	now := r.now
	w.changeService(r.svc, func(s *berthv1.Service) bool {
		if s.SpecVersion != version {
			return false
		}
		rev, err := revision.Find(s, 0)
		if err != nil {
			return false
		}
		revision.Rollback(s, rev, fmt.Sprintf("update to version %d failed: %s", version, why), now)
		o.cache.PinFiles(s.Namespace, s.Spec)
		return true
	})
	w.events = append(w.events, serviceEvent(r.svc, "rollback",
		fmt.Sprintf("rolling %s back: update to version %d failed: %s", r.svc.Name, version, why)))
	return true
}

// pause stops the update where it is.
func (o *Orchestrator) pause(r *rollout, w *writes, why string) {
	state, what := berthv1.UpdateState_UPDATE_STATE_PAUSED, "update"
	if r.rollingBack {
		state, what = berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED, "rollback"
	}
	msg := fmt.Sprintf("%s paused: %s", what, why)
	o.setUpdateState(r, w, state, msg)
	w.events = append(w.events, serviceEvent(r.svc, "update-paused", fmt.Sprintf("%s of %s to version %d paused: %s", what, r.svc.Name, r.svc.SpecVersion, why)))
}

// complete marks the update done.
func (o *Orchestrator) complete(r *rollout, w *writes) {
	state, msg := berthv1.UpdateState_UPDATE_STATE_COMPLETED, fmt.Sprintf("update to version %d completed", r.svc.SpecVersion)
	if r.rollingBack {
		state, msg = berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED, "rollback completed: "+r.svc.ChangeCause
	}
	o.setUpdateState(r, w, state, msg)
	w.events = append(w.events, serviceEvent(r.svc, "update-completed", fmt.Sprintf("%s: %s", r.svc.Name, msg)))
}

func (o *Orchestrator) setUpdateState(r *rollout, w *writes, state berthv1.UpdateState, msg string) {
	version, now := r.svc.SpecVersion, r.now
	w.changeService(r.svc, func(s *berthv1.Service) bool {
		if s.SpecVersion != version || s.UpdateStatus == nil || s.UpdateStatus.State == state {
			return false
		}
		s.UpdateStatus.State = state
		s.UpdateStatus.Message = msg
		if state != berthv1.UpdateState_UPDATE_STATE_PAUSED && state != berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED {
			s.UpdateStatus.CompletedAt = timestamppb.New(now)
		}
		return true
	})
}

// serviceEvent is an event about a service, found by its app and service.
func serviceEvent(svc *berthv1.Service, action, message string) *berthv1.Event {
	return &berthv1.Event{
		Kind:     store.EventKindApp,
		ObjectId: svc.Namespace + "/" + svc.App,
		Action:   action,
		Message:  message,
		Attributes: map[string]string{
			store.AttrNamespace: svc.Namespace,
			store.AttrApp:       svc.App,
			store.AttrService:   svc.Name,
		},
	}
}
