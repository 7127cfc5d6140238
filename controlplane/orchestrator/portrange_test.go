package orchestrator

import (
	"slices"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestTasksOfAPortRangeGetAPortEach(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := newService("web", 3)
	svc.Spec.Ports = []*berthv1.PortSpec{{Target: 80, Published: 6005, PublishedEnd: 6006, Protocol: "tcp", Mode: berthv1.PublishMode_PUBLISH_MODE_HOST}}
	svc = h.putService(svc)
	h.waitFor("two tasks placed and one waiting", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 3 && countOf(ts, assigned) == 2 && countOf(ts, pending) == 1
	})
	var ports []uint32
	for _, tk := range h.tasks(svc) {
		switch {
		case assigned(tk):
			if len(tk.HostPorts) != 1 || tk.HostPorts[0].Target != 80 || tk.HostPorts[0].Protocol != "tcp" {
				t.Fatalf("task %s has host ports %v, want one for target 80", tk.GetMeta().GetId(), tk.HostPorts)
			}
			ports = append(ports, tk.HostPorts[0].Published)
		case tk.GetStatus().GetMessage() != "no suitable node (no free host port in 6005-6006/tcp on 1 node)":
			t.Errorf("waiting task's reason %q", tk.GetStatus().GetMessage())
		}
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []uint32{6005, 6006}) {
		t.Errorf("host ports %v, want 6005 and 6006", ports)
	}
}
