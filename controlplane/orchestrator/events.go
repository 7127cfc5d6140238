package orchestrator

import (
	"fmt"
	"strconv"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
)

// reasonAttemptsExhausted is the restart decision's reason when the
// restart policy's max_attempts is used up.
const reasonAttemptsExhausted = "restart attempts exhausted"

// Event actions of the orchestrator, on kind "task" with the ended task as
// the object (see store's event vocabulary).
const (
	actionReplace        = "replace"
	actionRestartDelayed = "restart-delayed"
	actionRestartGivenUp = "restart-given-up"
)

// noteRestart adds to w the event of what the restart policy decided for
// a slot whose last task ended: replaced now, replaced later, or not at
// all because its attempts are used up. A task stopped on purpose (an
// update, a scale down) is no news.
//
// A pass repeats the same decision until something changes, so each
// event carries an id made of the ended task's and the action: the store
// records it once.
func (o *Orchestrator) noteRestart(w *writes, policy *berthv1.RestartPolicy, last *berthv1.Task, d restartDecision, now time.Time) {
	if last.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING {
		return
	}
	var nodeName string
	if n, ok := o.cache.Node(last.NodeId); ok {
		nodeName = n.Name
	}
	name := store.TaskName(last)
	var action, msg string
	switch {
	case d.restart && !d.at.After(now):
		action, msg = actionReplace, fmt.Sprintf("replacing task %s: %s", name, endedHow(last, nodeName))
	case d.restart:
		why := fmt.Sprintf("backoff after %d failures in a row", d.restarts)
		if policy.GetDelay() != nil {
			why = "the restart policy's delay"
		}
		action = actionRestartDelayed
		msg = fmt.Sprintf("restart of task %s delayed %s by %s, until %s: %s", name,
			d.at.Sub(last.GetStatus().GetTimestamp().AsTime()).Round(time.Millisecond), why,
			d.at.Format(time.RFC3339), endedHow(last, nodeName))
	case d.reason == reasonAttemptsExhausted:
		action = actionRestartGivenUp
		msg = fmt.Sprintf("not restarting task %s: its restart attempts (max_attempts %d) are used up; %s", name,
			policy.GetMaxAttempts(), endedHow(last, nodeName))
	default:
		return
	}
	ev := store.TaskEvent(last, action, msg, nodeName)
	ev.Meta = &berthv1.Meta{Id: last.GetMeta().GetId() + "." + action}
	ev.Attributes["restarts"] = strconv.FormatUint(uint64(d.restarts), 10)
	if code := last.GetStatus().GetExitCode(); code != 0 {
		ev.Attributes[store.AttrExitCode] = strconv.Itoa(int(code))
	}
	w.events = append(w.events, ev)
}

// endedHow says how a task ended, for event messages: "it failed on node
// alpha: exit code 137", "node alpha is down".
func endedHow(t *berthv1.Task, nodeName string) string {
	node := nodeName
	if node == "" {
		node = t.NodeId
	}
	st := t.GetStatus()
	switch st.GetState() {
	case berthv1.TaskState_TASK_STATE_ORPHANED:
		return taskstate.EndReason(st) + " (task orphaned)"
	case berthv1.TaskState_TASK_STATE_REJECTED:
		return fmt.Sprintf("rejected by node %s: %s", node, taskstate.EndReason(st))
	case berthv1.TaskState_TASK_STATE_COMPLETE:
		return fmt.Sprintf("it completed on node %s", node)
	}
	return fmt.Sprintf("it failed on node %s: %s", node, taskstate.EndReason(st))
}

// recordEvents hands the pass's events to the store's history, once the
// pass's writes are committed: a pass that fails is done again, events
// included.
func (w *writes) recordEvents(s *store.Store) {
	for _, ev := range w.events {
		s.RecordEvent(ev)
	}
	w.events = nil
}
