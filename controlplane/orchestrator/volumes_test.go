package orchestrator

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
)

// withVolume mounts the named volume source at /data.
func withVolume(svc *berthv1.Service, source string, external bool) *berthv1.Service {
	svc.Spec.Mounts = append(svc.Spec.Mounts, &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: source, Target: "/data", External: external})
	return svc
}

// volume returns the stored record of volume name, or nil.
func (h *harness) volume(name string) *berthv1.Volume {
	v, _ := h.cache.Volume("default", name)
	return v
}

func TestFirstPlacementRecordsTheSlotsVolumes(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	h.putNode(readyNode("n2", nil))
	svc := h.putService(withVolume(withVolume(newService("db", 2), "app_data", false), "shared", true))
	h.waitFor("two assigned tasks and their volumes", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 2 && every(ts, assigned) && h.volume("app_data.1") != nil && h.volume("app_data.2") != nil &&
			h.volume("shared.1") != nil && h.volume("shared.2") != nil
	})
	for _, tk := range h.tasks(svc) {
		name := "app_data." + map[uint64]string{1: "1", 2: "2"}[tk.Slot]
		v := h.volume(name)
		if v.NodeId != tk.NodeId || v.TaskId != tk.GetMeta().GetId() || v.Slot != tk.Slot || v.App != "app" ||
			v.Service != "db" || v.Source != "app_data" || v.Namespace != "default" || v.GetMeta().GetId() == "" {
			t.Errorf("record %v does not match task %s (slot %d on %s)", v, tk.GetMeta().GetId(), tk.Slot, tk.NodeId)
		}
		if ext := h.volume("shared." + name[len(name)-1:]); ext.App != "" || ext.NodeId != tk.NodeId {
			t.Errorf("external volume record %v: want no app, node %s", ext, tk.NodeId)
		}
	}
}

func TestSlotWaitsForItsVolumesNodeAndFollowsItBack(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(withVolume(newService("db", 1), "app_data", false))
	var first *berthv1.Task
	h.waitFor("the slot placed on n1", func() bool {
		ts := h.tasks(svc)
		if len(ts) == 1 && assigned(ts[0]) && h.volume("app_data.1") != nil {
			first = ts[0]
			return true
		}
		return false
	})
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, first)

	// n2 joins, empty, and n1 goes down: the slot must not start afresh
	// on n2.
	h.putNode(readyNode("n2", nil))
	down := readyNode("n1", nil)
	down.Status = berthv1.NodeStatus_NODE_STATUS_DOWN
	h.putNode(down)
	const reason = "waiting for node n1, which holds volume app_data.1"
	var waiting *berthv1.Task
	h.waitFor("the replacement waiting for n1", func() bool {
		for _, tk := range h.tasks(svc) {
			if tk.GetMeta().GetId() != first.GetMeta().GetId() && pending(tk) && tk.GetStatus().GetMessage() == reason {
				waiting = tk
				return true
			}
		}
		return false
	})
	if v := h.volume("app_data.1"); v.NodeId != "n1" || v.TaskId != first.GetMeta().GetId() {
		t.Fatalf("record while waiting: %v", v)
	}

	h.putNode(readyNode("n1", nil))
	h.waitFor("the replacement placed on n1 and recorded", func() bool {
		tk, ok := h.cache.Task(waiting.GetMeta().GetId())
		v := h.volume("app_data.1")
		return ok && assigned(tk) && tk.NodeId == "n1" && v.TaskId == tk.GetMeta().GetId() && v.NodeId == "n1"
	})
}

func TestDrainedVolumeNodeStopsTheSlot(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(withVolume(newService("db", 1), "app_data", false))
	var first *berthv1.Task
	h.waitFor("the slot placed on n1", func() bool {
		ts := h.tasks(svc)
		if len(ts) == 1 && assigned(ts[0]) {
			first = ts[0]
			return true
		}
		return false
	})
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, first)
	h.putNode(readyNode("n2", nil))
	drained := readyNode("n1", nil)
	drained.Availability = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	h.putNode(drained)
	h.waitFor("the task told to stop, its replacement waiting", func() bool {
		old, _ := h.cache.Task(first.GetMeta().GetId())
		waiting := false
		for _, tk := range h.tasks(svc) {
			waiting = waiting || (pending(tk) && wantRun(tk) && tk.GetStatus().GetMessage() == "waiting for node n1, which holds volume app_data.1")
		}
		return wantStop(old) && waiting
	})
	for _, tk := range h.tasks(svc) {
		if tk.NodeId == "n2" {
			t.Errorf("task %s went to n2 without its volume", tk.GetMeta().GetId())
		}
	}
}

func TestGlobalServiceRecordsAVolumePerNode(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	h.putNode(readyNode("n2", nil))
	svc := newService("agent", 0)
	svc.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	svc = h.putService(withVolume(svc, "app_cache", false))
	h.waitFor("a volume per node", func() bool {
		return h.volume("app_cache.n1") != nil && h.volume("app_cache.n2") != nil
	})
	for _, n := range []string{"n1", "n2"} {
		v := h.volume("app_cache." + n)
		if v.NodeId != n || v.Slot != 0 || v.TaskId == "" {
			t.Errorf("record %v: want node %s, slot 0, a task", v, n)
		}
	}
	if got := len(h.cache.Volumes(store.VolumesPrefix)); got != 2 {
		t.Errorf("%d volume records, want 2", got)
	}
}

func TestRebalanceLeavesServicesWithVolumes(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(withVolume(newService("db", 2), "app_data", false))
	h.waitFor("both slots on n1", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 2 && every(ts, assigned)
	})
	h.report(berthv1.TaskState_TASK_STATE_RUNNING, h.tasks(svc)...)
	h.putNode(readyNode("n2", nil))
	svc, _ = h.cache.Service(serviceKey(svc))
	h.changeService(svc, func(s *berthv1.Service) {
		s.Rebalance = &berthv1.RebalanceStatus{State: berthv1.RebalanceState_REBALANCE_STATE_REQUESTED}
	})
	h.waitFor("the rebalance done without moves", func() bool {
		cur, _ := h.cache.Service(serviceKey(svc))
		return cur.GetRebalance().GetState() == berthv1.RebalanceState_REBALANCE_STATE_COMPLETED
	})
	cur, _ := h.cache.Service(serviceKey(svc))
	if msg := cur.GetRebalance().GetMessage(); msg != "its tasks stay on the nodes that hold their volumes" {
		t.Errorf("rebalance message %q", msg)
	}
	if ts := h.tasks(svc); len(ts) != 2 {
		t.Errorf("%d tasks after the rebalance, want 2", len(ts))
	}
}
