package orchestrator

import (
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestTaskIndexFollowsEvents: an index fed a task's life, event by event,
// holds what one rebuilt from the final tasks holds.
func TestTaskIndexFollowsEvents(t *testing.T) {
	now := time.Now()
	svc := newService("web", 3)
	at := func(t *berthv1.Task, state berthv1.TaskState, node string) *berthv1.Task {
		next := proto.Clone(t).(*berthv1.Task)
		next.NodeId = node
		taskstate.Set(next, state, "", now)
		return next
	}
	a := newTask(svc, 1, "", now)
	b := newTask(svc, 2, "", now)
	c := newTask(svc, 3, "", now)
	aRunning := at(a, berthv1.TaskState_TASK_STATE_RUNNING, "n1")
	bFailed := at(at(b, berthv1.TaskState_TASK_STATE_RUNNING, "n2"), berthv1.TaskState_TASK_STATE_FAILED, "n2")
	put := func(t *berthv1.Task) store.Event {
		return store.Event{Kind: store.KindTask, Action: store.ActionPut, Object: t}
	}
	events := []store.Event{
		put(a), put(b), put(c),
		put(at(a, berthv1.TaskState_TASK_STATE_ASSIGNED, "n1")), put(aRunning),
		put(at(b, berthv1.TaskState_TASK_STATE_ASSIGNED, "n2")), put(bFailed),
		{Kind: store.KindTask, Action: store.ActionDelete, Object: c},
	}
	var followed taskIndex
	followed.rebuild(nil)
	if !followed.apply(events) {
		t.Fatal("apply refused task events")
	}
	var rebuilt taskIndex
	rebuilt.rebuild([]*berthv1.Task{aRunning, bFailed})

	for _, x := range []*taskIndex{&followed, &rebuilt} {
		if x.usage.Len() != 1 || len(x.pending) != 0 {
			t.Fatalf("index counts %d placed and %d pending tasks, want 1 (a) and 0", x.usage.Len(), len(x.pending))
		}
		id := svc.GetMeta().GetId()
		for key, want := range map[string]*berthv1.Task{"1": aRunning, "2": bFailed, "3": nil} {
			got := x.slotTasks(id, key)
			if (want == nil && len(got) != 0) || (want != nil && (len(got) != 1 || got[0] != want)) {
				t.Fatalf("slot %s holds %v, want %v", key, got, want)
			}
		}
		failed := x.recentFailures(now.Add(-time.Minute))
		if len(failed) != 1 || failed[0].GetMeta().GetId() != b.GetMeta().GetId() {
			t.Fatalf("recent failures = %v, want b", failed)
		}
	}
	// A failure older than the memory is forgotten.
	old := proto.Clone(bFailed).(*berthv1.Task)
	old.Status.Timestamp = timestamppb.New(now.Add(-2 * failureMemory))
	followed.update(old)
	if got := followed.recentFailures(now.Add(-failureMemory)); len(got) != 0 {
		t.Fatalf("an old failure still weighs: %v", got)
	}
	if !slices.Equal(mapKeys(followed.failed), nil) {
		t.Fatalf("an old failure is still indexed")
	}
	if followed.apply([]store.Event{{Kind: store.KindResync}}) {
		t.Fatal("a resync must ask for a rebuild")
	}
}

func mapKeys(m map[string]*berthv1.Task) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNodeChangeMatters(t *testing.T) {
	base := readyNode("n1", map[string]string{"zone": "eu"})
	change := func(f func(n *berthv1.Node)) *berthv1.Node {
		n := proto.Clone(base).(*berthv1.Node)
		f(n)
		return n
	}
	for _, tc := range []struct {
		name string
		ev   store.Event
		want bool
	}{
		{"joined", store.Event{Kind: store.KindNode, Action: store.ActionPut, Object: base}, true},
		{"removed", store.Event{Kind: store.KindNode, Action: store.ActionDelete, Object: base, Old: base}, true},
		{"heartbeat", store.Event{Kind: store.KindNode, Action: store.ActionPut, Old: base, Object: change(func(n *berthv1.Node) {
			n.LastHeartbeat = timestamppb.Now()
			n.Images = []string{"busybox"}
		})}, false},
		{"down", store.Event{Kind: store.KindNode, Action: store.ActionPut, Old: base, Object: change(func(n *berthv1.Node) {
			n.Status = berthv1.NodeStatus_NODE_STATUS_DOWN
		})}, true},
		{"drained", store.Event{Kind: store.KindNode, Action: store.ActionPut, Old: base, Object: change(func(n *berthv1.Node) {
			n.Availability = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
		})}, true},
		{"relabelled", store.Event{Kind: store.KindNode, Action: store.ActionPut, Old: base, Object: change(func(n *berthv1.Node) {
			n.Labels = map[string]string{"zone": "us"}
		})}, true},
		{"resized", store.Event{Kind: store.KindNode, Action: store.ActionPut, Old: base, Object: change(func(n *berthv1.Node) {
			n.Capacity = &berthv1.Resources{MilliCpus: 4000, MemoryBytes: 8 << 30}
		})}, true},
	} {
		if got := nodeChangeMatters(tc.ev); got != tc.want {
			t.Errorf("%s: nodeChangeMatters = %v, want %v", tc.name, got, tc.want)
		}
	}
}
