package orchestrator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestReplicatedServiceGetsOneTaskPerSlot(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(newService("web", 3))
	h.waitFor("3 assigned tasks", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 3 && every(ts, assigned)
	})
	for i, task := range h.tasks(svc) {
		if task.Slot != uint64(i+1) || task.NodeId != "n1" || task.SpecVersion != 1 || task.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING {
			t.Errorf("task %d: slot=%d node=%q version=%d desired=%v, want slot %d on n1, version 1, desired running",
				i, task.Slot, task.NodeId, task.SpecVersion, task.DesiredState, i+1)
		}
		var steps []berthv1.TaskState
		for _, st := range task.History {
			steps = append(steps, st.State)
		}
		want := []berthv1.TaskState{berthv1.TaskState_TASK_STATE_NEW, berthv1.TaskState_TASK_STATE_PENDING, berthv1.TaskState_TASK_STATE_ASSIGNED}
		if !slices.Equal(steps, want) {
			t.Errorf("slot %d history = %v, want %v", task.Slot, steps, want)
		}
	}
}

func TestScaleDownStopsThenForgetsSurplusSlots(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(newService("web", 3))
	h.waitFor("3 assigned tasks", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 3 && every(ts, assigned)
	})
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, h.tasks(svc)...)
	svc = h.changeService(svc, func(s *berthv1.Service) { s.Spec.Replicas = 1 })
	h.waitFor("slots 2 and 3 told to shut down", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 3 && countOf(ts, wantStop) == 2
	})
	ts := h.tasks(svc)
	if ts[0].Slot != 1 || !wantRun(ts[0]) {
		t.Fatalf("slot 1 must keep running:\n%s", h.dump())
	}
	// The agent stops the containers; the finished tasks of slots that no
	// longer exist are then deleted.
	h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, ts[1:]...)
	h.waitFor("only slot 1 left", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 1 && ts[0].Slot == 1
	})
}

func TestSpecChangeReplacesTaskAfterTheOldOneStopped(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(newService("web", 1))
	h.waitFor("an assigned task", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 1 && every(ts, assigned)
	})
	old := h.tasks(svc)[0]
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, old)

	events := h.cache.Subscribe()
	defer h.cache.Unsubscribe(events)
	svc = h.changeService(svc, func(s *berthv1.Service) {
		s.Spec.Image = "busybox:1.36"
		s.SpecVersion = 2
	})
	h.waitFor("the old task told to shut down", func() bool {
		cur, ok := h.cache.Task(old.GetMeta().GetId())
		return ok && wantStop(cur)
	})
	if n := countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.SpecVersion == 2 }); n != 0 {
		t.Fatalf("a version 2 task exists while the old one still runs:\n%s", h.dump())
	}
	cur, _ := h.cache.Task(old.GetMeta().GetId())
	h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, cur)
	h.waitFor("an assigned version 2 task in slot 1", func() bool {
		for _, t := range h.tasks(svc) {
			if t.SpecVersion == 2 && t.Slot == 1 && assigned(t) && wantRun(t) {
				return true
			}
		}
		return false
	})

	// The store's order of events proves the new task came after the old
	// one ended: one container per slot at a time.
	evs, _ := events.Drain()
	stoppedAt, createdAt := -1, -1
	for i, ev := range evs {
		task, ok := ev.Object.(*berthv1.Task)
		if !ok || ev.Action != store.ActionPut {
			continue
		}
		switch {
		case task.GetMeta().GetId() == old.GetMeta().GetId() && taskstate.Terminal(task.GetStatus().GetState()) && stoppedAt < 0:
			stoppedAt = i
		case task.SpecVersion == 2 && ev.Old == nil:
			createdAt = i
		}
	}
	if stoppedAt < 0 || createdAt < stoppedAt {
		t.Fatalf("old task ended at event %d, new task created at event %d: want the creation after the end", stoppedAt, createdAt)
	}
}

func TestSpecChangeOfAnUnplacedTask(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", map[string]string{"zone": "us"}))
	svc := newService("web", 1)
	svc.Spec.Placement = &berthv1.Placement{Constraints: []string{"node.labels.zone==eu"}}
	svc = h.putService(svc)
	h.waitFor("a pending task with a reason", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 1 && pending(ts[0]) && ts[0].GetStatus().GetMessage() != ""
	})
	old := h.tasks(svc)[0]
	// The user fixes the constraint: the task that never reached a node
	// must end rather than linger as pending forever.
	svc = h.changeService(svc, func(s *berthv1.Service) {
		s.Spec.Placement = nil
		s.SpecVersion = 2
	})
	h.waitFor("the new version assigned and the old task ended", func() bool {
		ts := h.tasks(svc)
		newAssigned := countOf(ts, func(t *berthv1.Task) bool { return t.SpecVersion == 2 && assigned(t) }) == 1
		cur, ok := h.cache.Task(old.GetMeta().GetId())
		return newAssigned && (!ok || !taskstate.Live(cur))
	})
	if n := countOf(h.tasks(svc), taskstate.Live); n != 1 {
		t.Fatalf("%d live tasks, want 1:\n%s", n, h.dump())
	}
}

func TestRestartPolicy(t *testing.T) {
	tests := []struct {
		name      string
		condition berthv1.RestartCondition
		end       berthv1.TaskState
		replaced  bool
	}{
		{"any-failed", berthv1.RestartCondition_RESTART_CONDITION_ANY, berthv1.TaskState_TASK_STATE_FAILED, true},
		{"any-complete", berthv1.RestartCondition_RESTART_CONDITION_ANY, berthv1.TaskState_TASK_STATE_COMPLETE, true},
		{"on-failure-failed", berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, berthv1.TaskState_TASK_STATE_FAILED, true},
		{"on-failure-complete", berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, berthv1.TaskState_TASK_STATE_COMPLETE, false},
		{"none-failed", berthv1.RestartCondition_RESTART_CONDITION_NONE, berthv1.TaskState_TASK_STATE_FAILED, false},
	}
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	services := make([]*berthv1.Service, len(tests))
	for i, tt := range tests {
		svc := newService(tt.name, 1)
		svc.Spec.RestartPolicy.Condition = tt.condition
		services[i] = h.putService(svc)
	}
	h.waitFor("every service's task assigned", func() bool {
		for _, svc := range services {
			if ts := h.tasks(svc); len(ts) != 1 || !assigned(ts[0]) {
				return false
			}
		}
		return true
	})
	// Every task ends in one transaction, so the orchestrator judges them
	// all in the same pass: when the replacements exist, the services
	// that must not restart have been judged too.
	var changes []store.Change
	for i, tt := range tests {
		changes = append(changes, reportChanges(tt.end, h.tasks(services[i]))...)
	}
	if _, err := h.store.Update(context.Background(), changes); err != nil {
		t.Fatal(err)
	}
	h.waitFor("replacements", func() bool {
		for i, tt := range tests {
			if ts := h.tasks(services[i]); tt.replaced && (len(ts) != 2 || !assigned(ts[1])) {
				return false
			}
		}
		return true
	})
	for i, tt := range tests {
		ts := h.tasks(services[i])
		if got := len(ts) == 2; got != tt.replaced {
			t.Errorf("%s: replaced = %v, want %v:\n%s", tt.name, got, tt.replaced, h.dump())
			continue
		}
		if !taskstate.Terminal(ts[0].GetStatus().GetState()) {
			t.Errorf("%s: the first task is %v, want it ended", tt.name, ts[0].GetStatus().GetState())
		}
		if tt.replaced && (ts[1].Slot != 1 || !wantRun(ts[1])) {
			t.Errorf("%s: the replacement is slot %d desired %v, want slot 1 desired running", tt.name, ts[1].Slot, ts[1].DesiredState)
		}
	}
}

// A restart that is due soon must not wait for one due later in another
// service: the orchestrator's single timer serves every service.
func TestRestartDueEarlierIsNotPostponedByALaterOne(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	soon := newService("soon", 1)
	soon.Spec.RestartPolicy.Delay = durationpb.New(time.Second)
	soon = h.putService(soon)
	late := newService("late", 1)
	late.Spec.RestartPolicy.Delay = durationpb.New(time.Hour)
	late = h.putService(late)
	h.waitFor("both tasks assigned", func() bool {
		return countOf(h.tasks(soon), assigned) == 1 && countOf(h.tasks(late), assigned) == 1
	})
	first := h.tasks(soon)[0]

	// Fail soon's task together with a scale-up, so that the pass which
	// schedules its restart leaves a mark: the slot 2 task.
	var txn store.Txn
	grown := changeServiceTxn(&txn, soon, func(s *berthv1.Service) { s.Spec.Replicas = 2 })
	failed := failedCopy(first)
	txn.Update(taskKey(failed), failed)
	h.commit(&txn)
	h.waitFor("slot 2 assigned", func() bool {
		slot := slotTasks(h.tasks(grown), 2)
		return len(slot) == 1 && assigned(slot[0])
	})

	h.report(berthv1.TaskState_TASK_STATE_FAILED, h.tasks(late)...)
	h.waitFor("slot 1 of soon replaced", func() bool {
		slot := slotTasks(h.tasks(grown), 1)
		return len(slot) == 2 && assigned(slot[1])
	})
}

// changeServiceTxn adds the write of a changed copy of svc to txn.
func changeServiceTxn(txn *store.Txn, svc *berthv1.Service, change func(*berthv1.Service)) *berthv1.Service {
	next := proto.Clone(svc).(*berthv1.Service)
	change(next)
	txn.Put(serviceKey(next), next)
	return next
}

// failedCopy is t as an agent's failure report leaves it.
func failedCopy(t *berthv1.Task) *berthv1.Task {
	next := proto.Clone(t).(*berthv1.Task)
	taskstate.Advance(next, &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 1, Timestamp: timestamppb.Now()}, time.Now())
	return next
}

func TestGlobalServiceRunsOnEligibleNodes(t *testing.T) {
	h := newHarness(t)
	drained := readyNode("n3", map[string]string{"zone": "eu"})
	drained.Availability = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	down := readyNode("n4", map[string]string{"zone": "eu"})
	down.Status = berthv1.NodeStatus_NODE_STATUS_DOWN
	for _, n := range []*berthv1.Node{readyNode("n1", map[string]string{"zone": "eu"}), readyNode("n2", map[string]string{"zone": "us"}), drained, down} {
		h.putNode(n)
	}
	tests := []struct {
		name        string
		constraints []string
		nodes       []string
	}{
		{"everywhere", nil, []string{"n1", "n2"}},
		{"eu-only", []string{"node.labels.zone==eu"}, []string{"n1"}},
		{"not-n2", []string{"node.name!=n2"}, []string{"n1"}},
	}
	services := make([]*berthv1.Service, len(tests))
	for i, tt := range tests {
		svc := newService(tt.name, 0)
		svc.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
		svc.Spec.Placement = &berthv1.Placement{Constraints: tt.constraints}
		services[i] = h.putService(svc)
	}
	nodesOf := func(svc *berthv1.Service, pred func(*berthv1.Task) bool) []string {
		var out []string
		for _, t := range h.tasks(svc) {
			if pred(t) {
				out = append(out, t.NodeId)
			}
		}
		return out
	}
	h.waitFor("global tasks assigned", func() bool {
		for i, tt := range tests {
			if !slices.Equal(nodesOf(services[i], assigned), tt.nodes) {
				return false
			}
		}
		return true
	})
	for i, tt := range tests {
		// Tasks for the drained and the down node would have been created
		// in the same pass as the others.
		if got := nodesOf(services[i], func(*berthv1.Task) bool { return true }); !slices.Equal(got, tt.nodes) {
			t.Errorf("%s: tasks on %v, want %v", tt.name, got, tt.nodes)
		}
		for _, task := range h.tasks(services[i]) {
			if task.Slot != 0 {
				t.Errorf("%s: global task has slot %d, want 0", tt.name, task.Slot)
			}
		}
	}

	n1 := readyNode("n1", map[string]string{"zone": "eu"})
	n1.Availability = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	h.putNode(n1)
	h.waitFor("the tasks on drained n1 told to shut down", func() bool {
		for _, svc := range services {
			if !slices.Equal(nodesOf(svc, wantStop), []string{"n1"}) {
				return false
			}
		}
		return true
	})
	if got := nodesOf(services[0], wantRun); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("everywhere: tasks desired running on %v, want [n2]", got)
	}
}

func TestDeletedServiceStopsAndForgetsItsTasks(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := newService("web", 2)
	svc.Spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_NONE
	svc = h.putService(svc)
	h.waitFor("2 assigned tasks", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 2 && every(ts, assigned)
	})
	ts := h.tasks(svc)
	h.report(berthv1.TaskState_TASK_STATE_FAILED, ts[0])
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, ts[1])
	h.waitFor("slot 2 running", func() bool {
		cur, ok := h.cache.Task(ts[1].GetMeta().GetId())
		return ok && isState(berthv1.TaskState_TASK_STATE_RUNNING)(cur)
	})
	h.deleteService(svc)
	h.waitFor("the failed task deleted and the running one told to stop", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 1 && ts[0].Slot == 2 && wantStop(ts[0])
	})
	h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, h.tasks(svc)...)
	h.waitFor("no task left", func() bool { return len(h.tasks(svc)) == 0 })
}

func TestUnplaceableTaskStaysPendingWithTheReason(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", map[string]string{"zone": "us"}))
	tests := []struct {
		name   string
		change func(*berthv1.ServiceSpec)
		reason string
	}{
		{"constraint", func(s *berthv1.ServiceSpec) {
			s.Placement = &berthv1.Placement{Constraints: []string{"node.labels.zone==eu"}}
		}, "constraint node.labels.zone==eu on 1 node"},
		{"memory", func(s *berthv1.ServiceSpec) {
			s.Reservations = &berthv1.Resources{MemoryBytes: 64 << 30}
		}, "insufficient memory on 1 node"},
	}
	services := make([]*berthv1.Service, len(tests))
	for i, tt := range tests {
		svc := newService(tt.name, 1)
		tt.change(svc.Spec)
		services[i] = h.putService(svc)
	}
	h.waitFor("every task pending with a reason", func() bool {
		for _, svc := range services {
			ts := h.tasks(svc)
			if len(ts) != 1 || !pending(ts[0]) || ts[0].GetStatus().GetMessage() == "" {
				return false
			}
		}
		return true
	})
	for i, tt := range tests {
		task := h.tasks(services[i])[0]
		if msg := task.GetStatus().GetMessage(); !strings.Contains(msg, tt.reason) {
			t.Errorf("%s: message %q does not say %q", tt.name, msg, tt.reason)
		}
		if task.NodeId != "" {
			t.Errorf("%s: unplaced task has node %q", tt.name, task.NodeId)
		}
	}
}

func TestHistoryKeepsFiveEndedTasksPerSlot(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := newService("web", 1)
	svc.Spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_NONE
	// The service and seven failed attempts of its slot arrive together.
	var txn store.Txn
	txn.Put(serviceKey(svc), svc)
	base := time.Now().Add(-time.Hour)
	var ids []string
	for i := 0; i < 7; i++ {
		task := newTask(svc, 1, "n1", base.Add(time.Duration(i)*time.Minute))
		taskstate.Advance(task, &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 1}, base.Add(time.Duration(i)*time.Minute+time.Second))
		txn.Create(taskKey(task), task)
		ids = append(ids, task.GetMeta().GetId())
	}
	h.commit(&txn)
	h.waitFor("history pruned to 5", func() bool { return len(h.tasks(svc)) == historyLimit })
	var kept []string
	for _, task := range h.tasks(svc) {
		kept = append(kept, task.GetMeta().GetId())
	}
	if want := ids[2:]; !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want the five newest %v", kept, want)
	}
}

// TestRepeatedFailuresMoveTheTask fails a task twice on its node: the next
// replacement goes to the other node.
func TestRepeatedFailuresMoveTheTask(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	h.putNode(readyNode("n2", nil))
	svc := newService("flaky", 1)
	svc.Spec.RestartPolicy.Delay = durationpb.New(time.Millisecond)
	svc = h.putService(svc)
	var first string
	for round := 1; round <= 3; round++ {
		var current *berthv1.Task
		h.waitFor(fmt.Sprintf("task %d assigned", round), func() bool {
			ts := h.tasks(svc)
			for _, tk := range ts {
				if assigned(tk) {
					current = tk
				}
			}
			return current != nil && len(ts) == round
		})
		if round == 1 {
			first = current.NodeId
		}
		if round < 3 {
			if current.NodeId != first {
				t.Fatalf("replacement %d went to %s after one failure on %s; want it to stay\n%s", round, current.NodeId, first, h.dump())
			}
			h.report(berthv1.TaskState_TASK_STATE_FAILED, current)
			continue
		}
		if current.NodeId == first {
			t.Fatalf("after two failures on %s the replacement went there again\n%s", first, h.dump())
		}
	}
}

// TestDownNodeTasksAreOrphanedAndReplaced marks a node down: its task is
// orphaned and its slot filled on the other node at once.
func TestDownNodeTasksAreOrphanedAndReplaced(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(newService("web", 1))
	var lost *berthv1.Task
	h.waitFor("task assigned to n1", func() bool {
		ts := h.tasks(svc)
		if len(ts) == 1 && assigned(ts[0]) {
			lost = ts[0]
			return true
		}
		return false
	})
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, lost)
	h.putNode(readyNode("n2", nil))
	down := readyNode("n1", nil)
	down.Status = berthv1.NodeStatus_NODE_STATUS_DOWN
	h.putNode(down)
	h.waitFor("task orphaned and replaced on n2", func() bool {
		var orphaned, replaced bool
		for _, tk := range h.tasks(svc) {
			switch {
			case tk.GetMeta().GetId() == lost.GetMeta().GetId():
				orphaned = tk.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_ORPHANED
			case tk.NodeId == "n2" && assigned(tk):
				replaced = true
			}
		}
		return orphaned && replaced
	})
}

// TestRemovedNodeTasksAreOrphanedAndReplaced removes a node (`berth node
// rm`): its task is orphaned and its slot filled on the other node, as for
// a node that is down.
func TestRemovedNodeTasksAreOrphanedAndReplaced(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(newService("web", 1))
	var lost *berthv1.Task
	h.waitFor("task assigned to n1", func() bool {
		ts := h.tasks(svc)
		if len(ts) == 1 && assigned(ts[0]) {
			lost = ts[0]
			return true
		}
		return false
	})
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, lost)
	h.putNode(readyNode("n2", nil))
	var txn store.Txn
	txn.Delete(store.NodeKey("n1"), 0)
	h.commit(&txn)
	h.waitFor("task orphaned and replaced on n2", func() bool {
		var orphaned, replaced bool
		for _, tk := range h.tasks(svc) {
			switch {
			case tk.GetMeta().GetId() == lost.GetMeta().GetId():
				orphaned = tk.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_ORPHANED &&
					strings.Contains(tk.GetStatus().GetMessage(), "removed")
			case tk.NodeId == "n2" && assigned(tk):
				replaced = true
			}
		}
		return orphaned && replaced
	})
}
