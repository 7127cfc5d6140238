package orchestrator

import (
	"context"
	"log/slog"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestNoteRestart(t *testing.T) {
	now := time.Unix(1000, 0)
	run := berthv1.TaskState_TASK_STATE_RUNNING
	failed := berthv1.TaskState_TASK_STATE_FAILED
	any := berthv1.RestartCondition_RESTART_CONDITION_ANY
	// last is the slot's ended task: slot 2 of web on node n1.
	last := func(state, desired berthv1.TaskState, restarts uint32, code int32, msg string) *berthv1.Task {
		tk := ended(state, desired, now, 0, restarts)
		tk.Meta = &berthv1.Meta{Id: "t1"}
		tk.Service, tk.Slot, tk.NodeId = "web", 2, "n1"
		tk.Status.ExitCode, tk.Status.Message = code, msg
		return tk
	}
	tests := []struct {
		name   string
		policy *berthv1.RestartPolicy
		last   *berthv1.Task
		action string
		msg    string
	}{
		{"failed, replaced at once", &berthv1.RestartPolicy{Condition: any}, last(failed, run, 0, 137, ""),
			actionReplace, "replacing task web.2: it failed on node n1: exit code 137"},
		{"orphaned, replaced at once", &berthv1.RestartPolicy{Condition: any}, last(berthv1.TaskState_TASK_STATE_ORPHANED, run, 0, 0, "node n1 is down"),
			actionReplace, "replacing task web.2: node n1 is down (task orphaned)"},
		{"backoff", &berthv1.RestartPolicy{Condition: any}, last(failed, run, 2, 1, ""),
			actionRestartDelayed, "restart of task web.2 delayed 500ms by backoff after 3 failures in a row, until " +
				now.Add(2*backoffBase).Format(time.RFC3339) + ": it failed on node n1: exit code 1"},
		{"policy delay", &berthv1.RestartPolicy{Condition: any, Delay: durationpb.New(time.Minute)}, last(failed, run, 0, 1, ""),
			actionRestartDelayed, "restart of task web.2 delayed 1m0s by the restart policy's delay, until " +
				now.Add(time.Minute).Format(time.RFC3339) + ": it failed on node n1: exit code 1"},
		{"attempts used up", &berthv1.RestartPolicy{Condition: any, MaxAttempts: 3}, last(failed, run, 3, 1, ""),
			actionRestartGivenUp, "not restarting task web.2: its restart attempts (max_attempts 3) are used up; it failed on node n1: exit code 1"},
		{"restart policy none is no news", &berthv1.RestartPolicy{Condition: berthv1.RestartCondition_RESTART_CONDITION_NONE}, last(failed, run, 0, 1, ""),
			"", ""},
		{"stopped on purpose is no news", &berthv1.RestartPolicy{Condition: any}, last(berthv1.TaskState_TASK_STATE_SHUTDOWN, berthv1.TaskState_TASK_STATE_SHUTDOWN, 0, 0, ""),
			"", ""},
	}
	// An empty cache: node names fall back to ids.
	o := &Orchestrator{cache: store.NewCache(nil, slog.New(slog.DiscardHandler))}
	for _, tt := range tests {
		var w writes
		o.noteRestart(&w, tt.policy, tt.last, decideRestart(tt.policy, []*berthv1.Task{tt.last}, now), now)
		if tt.action == "" {
			if len(w.events) != 0 {
				t.Errorf("%s: got %v, want no event", tt.name, w.events)
			}
			continue
		}
		if len(w.events) != 1 {
			t.Errorf("%s: got %d events, want 1", tt.name, len(w.events))
			continue
		}
		ev := w.events[0]
		if ev.Action != tt.action || ev.Message != tt.msg {
			t.Errorf("%s: got %s %q\nwant %s %q", tt.name, ev.Action, ev.Message, tt.action, tt.msg)
		}
		if ev.GetMeta().GetId() != "t1."+tt.action || ev.ObjectId != "t1" || ev.Attributes[store.AttrService] != "web" {
			t.Errorf("%s: event %v lacks its id or the task's identity", tt.name, ev)
		}
	}
}

func TestReplacementIsRecorded(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(newService("web", 1))
	var first *berthv1.Task
	h.waitFor("task assigned", func() bool {
		ts := h.tasks(svc)
		if len(ts) == 1 && assigned(ts[0]) {
			first = ts[0]
			return true
		}
		return false
	})
	h.report(berthv1.TaskState_TASK_STATE_FAILED, first)
	h.waitFor("replacement", func() bool { return len(h.tasks(svc)) == 2 })
	// The events of a pass are recorded once its writes are committed,
	// just after the cache may see them: poll, with a deadline.
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := h.store.FlushEvents(ctx); err != nil {
			t.Fatal(err)
		}
		evs, err := h.store.Events(ctx, time.Time{}, 10, func(ev *berthv1.Event) bool { return ev.Action == actionReplace })
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 {
			if want := "replacing task web.1: it failed on node n1: exit code 1"; evs[0].Message != want || evs[0].ObjectId != first.GetMeta().GetId() {
				t.Fatalf("event %q about %s, want %q about %s", evs[0].Message, evs[0].ObjectId, want, first.GetMeta().GetId())
			}
			return
		}
		if len(evs) > 1 || time.Now().After(deadline) {
			t.Fatalf("replace events %v, want one", evs)
		}
		<-tick.C
	}
}
