package orchestrator

import (
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// runningService stores a service of n replicas on the given nodes and
// reports all its tasks running.
func runningService(h *harness, svc *berthv1.Service) *berthv1.Service {
	h.t.Helper()
	svc = h.putService(svc)
	n := int(svc.Spec.Replicas)
	h.waitFor("assigned tasks", func() bool {
		ts := h.tasks(svc)
		return len(ts) == n && every(ts, assigned)
	})
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, h.tasks(svc)...)
	h.waitFor("running tasks", func() bool { return every(h.tasks(svc), running) })
	return svc
}

// apply changes svc's image as the API server's apply does: a new version
// whose rollout starts now.
func (h *harness) apply(svc *berthv1.Service, image string) *berthv1.Service {
	h.t.Helper()
	return h.changeService(h.stored(svc), func(s *berthv1.Service) {
		spec := proto.Clone(s.Spec).(*berthv1.ServiceSpec)
		spec.Image = image
		revision.Change(s, spec, "apply", berthv1.UpdateState_UPDATE_STATE_UPDATING, "", time.Now())
	})
}

// stored returns the service as the cache holds it now.
func (h *harness) stored(svc *berthv1.Service) *berthv1.Service {
	h.t.Helper()
	s, ok := h.cache.Service(serviceKey(svc))
	if !ok {
		h.t.Fatalf("service %s is not stored", svc.Name)
	}
	return s
}

func (h *harness) updateState(svc *berthv1.Service) berthv1.UpdateState {
	return h.stored(svc).GetUpdateStatus().GetState()
}

func withUpdate(svc *berthv1.Service, cfg *berthv1.UpdateConfig) *berthv1.Service {
	svc.Spec.UpdateConfig = cfg
	return svc
}

var (
	running = isState(berthv1.TaskState_TASK_STATE_RUNNING)
	image   = func(img string) func(*berthv1.Task) bool {
		return func(t *berthv1.Task) bool { return t.Spec.GetImage() == img }
	}
)

func and(preds ...func(*berthv1.Task) bool) func(*berthv1.Task) bool {
	return func(t *berthv1.Task) bool {
		for _, p := range preds {
			if !p(t) {
				return false
			}
		}
		return true
	}
}

func TestRollingUpdateReplacesOneSlotAtATime(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := runningService(h, withUpdate(newService("web", 3), &berthv1.UpdateConfig{Parallelism: 1, Monitor: durationpb.New(time.Millisecond)}))
	svc = h.apply(svc, "web:2")
	for updated := 0; updated < 3; updated++ {
		// One old task is told to stop, and no other.
		h.waitFor("an old task told to stop", func() bool {
			return countOf(h.tasks(svc), and(image("busybox"), wantStop, running)) == 1
		})
		if n := countOf(h.tasks(svc), and(image("busybox"), wantStop)); n != updated+1 {
			t.Fatalf("%d old tasks told to stop after %d slots updated, want %d:\n%s", n, updated, updated+1, h.dump())
		}
		stopping := h.tasks(svc)
		for _, task := range stopping {
			if image("busybox")(task) && wantStop(task) && running(task) {
				h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, task)
			}
		}
		h.waitFor("the new task assigned", func() bool {
			return countOf(h.tasks(svc), and(image("web:2"), assigned)) == 1
		})
		for _, task := range h.tasks(svc) {
			if image("web:2")(task) && assigned(task) {
				h.report(berthv1.TaskState_TASK_STATE_RUNNING, task)
			}
		}
	}
	h.waitFor("the update completed", func() bool {
		return h.updateState(svc) == berthv1.UpdateState_UPDATE_STATE_COMPLETED
	})
	if n := countOf(h.tasks(svc), and(image("web:2"), running, wantRun)); n != 3 {
		t.Fatalf("%d new tasks run, want 3:\n%s", n, h.dump())
	}
}

func TestStartFirstKeepsTheOldTaskUntilTheNewOneRuns(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := runningService(h, withUpdate(newService("web", 1), &berthv1.UpdateConfig{
		Parallelism: 1, Order: berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST, Monitor: durationpb.New(time.Millisecond),
	}))
	svc = h.apply(svc, "web:2")
	h.waitFor("the new task assigned beside the old one", func() bool {
		return countOf(h.tasks(svc), and(image("web:2"), assigned)) == 1
	})
	ts := h.tasks(svc)
	old, fresh := ts[0], ts[1]
	if !wantRun(old) || !running(old) {
		t.Fatalf("the old task must keep running until the new one runs:\n%s", h.dump())
	}
	if fresh.Replaces != old.GetMeta().GetId() || fresh.ReplaceCause != berthv1.ReplaceCause_REPLACE_CAUSE_UPDATE {
		t.Fatalf("the new task replaces %q (%v), want %q (update)", fresh.Replaces, fresh.ReplaceCause, old.GetMeta().GetId())
	}
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, fresh)
	h.waitFor("the old task told to stop", func() bool { return wantStop(h.tasks(svc)[0]) })
	if msg := h.tasks(svc)[0].GetStatus().GetMessage(); !strings.Contains(msg, "replaced by task web.1 (update)") {
		t.Fatalf("old task message = %q", msg)
	}
	h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, h.tasks(svc)[0])
	h.waitFor("the update completed", func() bool {
		return h.updateState(svc) == berthv1.UpdateState_UPDATE_STATE_COMPLETED
	})
}

// TestStartFirstWithAVolumeStopsFirst: a slot's volume holds one copy of
// its data, so its old task stops before the new one starts, whatever the
// order asks.
func TestStartFirstWithAVolumeStopsFirst(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := withUpdate(newService("db", 1), &berthv1.UpdateConfig{
		Parallelism: 1, Order: berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST, Monitor: durationpb.New(time.Millisecond),
	})
	svc.Spec.Mounts = []*berthv1.Mount{{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "shop_data", Target: "/data"}}
	svc = runningService(h, svc)
	svc = h.apply(svc, "db:2")
	h.waitFor("the old task told to stop", func() bool {
		return countOf(h.tasks(svc), and(image("busybox"), wantStop)) == 1
	})
	if n := countOf(h.tasks(svc), image("db:2")); n != 0 {
		t.Fatalf("a new task was made beside the old one, on the same volume:\n%s", h.dump())
	}
	h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, h.tasks(svc)...)
	h.waitFor("the new task assigned", func() bool {
		return countOf(h.tasks(svc), and(image("db:2"), assigned)) == 1
	})
}

func TestFailedUpdateRollsBackOrPauses(t *testing.T) {
	for _, tc := range []struct {
		action    berthv1.UpdateFailureAction
		wantState berthv1.UpdateState
	}{
		{berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED},
		{berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE, berthv1.UpdateState_UPDATE_STATE_PAUSED},
	} {
		t.Run(tc.action.String(), func(t *testing.T) {
			h := newHarness(t)
			h.putNode(readyNode("n1", nil))
			svc := newService("web", 3)
			svc.Spec.UpdateConfig = &berthv1.UpdateConfig{Parallelism: 1, FailureAction: tc.action, Monitor: durationpb.New(time.Minute)}
			svc.Spec.RollbackConfig = &berthv1.UpdateConfig{Parallelism: 0, Monitor: durationpb.New(time.Millisecond)}
			svc = runningService(h, svc)
			svc = h.apply(svc, "web:broken")
			h.waitFor("an old task told to stop", func() bool { return countOf(h.tasks(svc), and(wantStop, running)) == 1 })
			for _, task := range h.tasks(svc) {
				if wantStop(task) {
					h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, task)
				}
			}
			h.waitFor("the new task assigned", func() bool { return countOf(h.tasks(svc), and(image("web:broken"), assigned)) == 1 })
			for _, task := range h.tasks(svc) {
				if image("web:broken")(task) {
					h.report(berthv1.TaskState_TASK_STATE_FAILED, task)
				}
			}
			h.waitFor(tc.wantState.String(), func() bool { return h.updateState(svc) == tc.wantState })
			st := h.stored(svc)
			if !strings.Contains(st.UpdateStatus.Message, "failed: exit code 1") {
				t.Fatalf("update status message = %q, want the failure", st.UpdateStatus.Message)
			}
			if tc.wantState == berthv1.UpdateState_UPDATE_STATE_PAUSED {
				// Paused: the two other slots keep their old tasks.
				if n := countOf(h.tasks(svc), and(image("busybox"), wantRun)); n != 2 {
					t.Fatalf("%d old tasks still meant to run, want 2:\n%s", n, h.dump())
				}
				return
			}
			if st.Spec.Image != "busybox" || st.SpecVersion != 3 {
				t.Fatalf("after rollback: image %q version %d, want busybox version 3", st.Spec.Image, st.SpecVersion)
			}
			// The rollback puts the old spec back in the failed slot; the
			// slots that never updated keep their tasks.
			h.waitFor("slot 1 assigned again with the old spec", func() bool {
				return countOf(h.tasks(svc), and(image("busybox"), assigned)) == 1
			})
			for _, task := range h.tasks(svc) {
				if assigned(task) {
					h.report(berthv1.TaskState_TASK_STATE_RUNNING, task)
				}
			}
			h.waitFor("the rollback completed", func() bool {
				return h.updateState(svc) == berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED
			})
			if n := countOf(h.tasks(svc), and(image("busybox"), running, wantRun)); n != 3 {
				t.Fatalf("%d tasks of the old spec run, want 3:\n%s", n, h.dump())
			}
			// The tasks that never updated run the spec rolled back to:
			// they carry its version now.
			h.waitFor("every running task at version 3", func() bool {
				return countOf(h.tasks(svc), and(running, wantRun, func(t *berthv1.Task) bool { return t.SpecVersion == 3 })) == 3
			})
		})
	}
}

func TestDrainStartsReplacementsBeforeStoppingTasks(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := runningService(h, newService("web", 2))
	h.putNode(readyNode("n2", nil))
	drained := readyNode("n1", nil)
	drained.Availability = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	h.putNode(drained)
	h.waitFor("two replacements on n2", func() bool {
		return countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.NodeId == "n2" && assigned(t) }) == 2
	})
	if n := countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.NodeId == "n1" && wantRun(t) }); n != 2 {
		t.Fatalf("the tasks on n1 must run until their replacements do:\n%s", h.dump())
	}
	for _, task := range h.tasks(svc) {
		if task.NodeId == "n2" {
			h.report(berthv1.TaskState_TASK_STATE_RUNNING, task)
		}
	}
	h.waitFor("the tasks on n1 told to stop", func() bool {
		return countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.NodeId == "n1" && wantStop(t) }) == 2
	})
}

func TestDrainWithoutRoomStopsFirst(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := runningService(h, newService("web", 1))
	drained := readyNode("n1", nil)
	drained.Availability = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	h.putNode(drained)
	onN1 := func(t *berthv1.Task) bool { return t.NodeId == "n1" }
	h.waitFor("the task told to stop", func() bool { return countOf(h.tasks(svc), and(onN1, wantStop)) == 1 })
	h.waitFor("its replacement waiting for a node", func() bool {
		return countOf(h.tasks(svc), func(t *berthv1.Task) bool {
			return pending(t) && wantRun(t) && strings.Contains(t.GetStatus().GetMessage(), "node drained on 1 node")
		}) == 1
	})
}

func TestRebalanceMovesTasksToANewNode(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := runningService(h, newService("web", 4))
	h.putNode(readyNode("n2", nil))
	svc = h.changeService(h.stored(svc), func(s *berthv1.Service) {
		s.Rebalance = &berthv1.RebalanceStatus{State: berthv1.RebalanceState_REBALANCE_STATE_REQUESTED}
	})
	onNode := func(node string) func(*berthv1.Task) bool {
		return func(t *berthv1.Task) bool { return t.NodeId == node }
	}
	for moved := 0; moved < 2; {
		h.waitFor("a move to n2", func() bool {
			return countOf(h.tasks(svc), and(onNode("n2"), assigned)) > 0 ||
				h.stored(svc).GetRebalance().GetState() == berthv1.RebalanceState_REBALANCE_STATE_COMPLETED
		})
		if h.stored(svc).GetRebalance().GetState() == berthv1.RebalanceState_REBALANCE_STATE_COMPLETED {
			t.Fatalf("rebalance completed after %d moves, want 2:\n%s", moved, h.dump())
		}
		// Every old task still runs: a move starts before it stops.
		if n := countOf(h.tasks(svc), and(onNode("n1"), wantRun)); n != 4-moved {
			t.Fatalf("%d tasks meant to run on n1 during a move, want %d:\n%s", n, 4-moved, h.dump())
		}
		for _, task := range h.tasks(svc) {
			if onNode("n2")(task) && assigned(task) {
				h.report(berthv1.TaskState_TASK_STATE_RUNNING, task)
				moved++
			}
		}
		h.waitFor("the moved tasks stopped on n1", func() bool {
			return countOf(h.tasks(svc), and(onNode("n1"), wantRun)) == 4-moved
		})
		for _, task := range h.tasks(svc) {
			if onNode("n1")(task) && wantStop(task) && running(task) {
				h.report(berthv1.TaskState_TASK_STATE_SHUTDOWN, task)
			}
		}
	}
	h.waitFor("rebalance completed", func() bool {
		return h.stored(svc).GetRebalance().GetState() == berthv1.RebalanceState_REBALANCE_STATE_COMPLETED
	})
	if got := h.stored(svc).GetRebalance(); got.Moved != 2 || !strings.Contains(got.Message, "moved 2 tasks") {
		t.Fatalf("rebalance status = %v, want 2 moved", got)
	}
}

func TestAutoRebalanceFollowsANodeThatJoins(t *testing.T) {
	h := newHarness(t)
	var txn store.Txn
	txn.Put(store.SettingsKey, &berthv1.ClusterSettings{AutoRebalance: true})
	h.commit(&txn)
	h.putNode(readyNode("n1", nil))
	svc := runningService(h, newService("web", 2))
	h.putNode(readyNode("n2", nil))
	h.waitFor("a task moved to n2", func() bool {
		return countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.NodeId == "n2" }) > 0
	})
	if got := h.stored(svc).GetRebalance(); got.GetRequestedAt() == nil && got.GetMoved() == 0 {
		t.Fatalf("rebalance status = %v, want a request", got)
	}
}

func TestGlobalServiceFollowsJoinsAndLabelChanges(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", map[string]string{"zone": "eu"}))
	svc := newService("agent", 0)
	svc.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	svc.Spec.Placement = &berthv1.Placement{Constraints: []string{"node.labels.zone==eu"}}
	svc = h.putService(svc)
	onNode := func(node string) func(*berthv1.Task) bool {
		return func(t *berthv1.Task) bool { return t.NodeId == node && wantRun(t) }
	}
	h.waitFor("a task on n1", func() bool { return countOf(h.tasks(svc), onNode("n1")) == 1 })

	// A node that joins with a matching label gets a task.
	h.putNode(readyNode("n2", map[string]string{"zone": "eu"}))
	h.waitFor("a task on n2", func() bool { return countOf(h.tasks(svc), onNode("n2")) == 1 })

	// A node whose label stops matching loses it; one whose label comes to
	// match gets one.
	h.putNode(readyNode("n1", map[string]string{"zone": "us"}))
	h.waitFor("n1's task told to stop", func() bool { return countOf(h.tasks(svc), onNode("n1")) == 0 })
	h.putNode(readyNode("n3", map[string]string{"zone": "us"}))
	h.putNode(readyNode("n3", map[string]string{"zone": "eu"}))
	h.waitFor("a task on n3", func() bool { return countOf(h.tasks(svc), onNode("n3")) == 1 })
}
