package scheduler

import (
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const gib = 1 << 30

type nodeOpt func(*berthv1.Node)

// node returns a ready, active node with 4 CPUs and 8 GiB of memory.
func node(id string, opts ...nodeOpt) *berthv1.Node {
	n := &berthv1.Node{
		Meta:         &berthv1.Meta{Id: id},
		Name:         id,
		Hostname:     "host-" + id,
		Status:       berthv1.NodeStatus_NODE_STATUS_READY,
		Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		Capacity:     &berthv1.Resources{MilliCpus: 4000, MemoryBytes: 8 * gib},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func labels(kv ...string) nodeOpt {
	return func(n *berthv1.Node) {
		n.Labels = make(map[string]string)
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func status(s berthv1.NodeStatus) nodeOpt {
	return func(n *berthv1.Node) { n.Status = s }
}

// failing adds a failing condition of type typ; passing a passing one.
func failing(typ string) nodeOpt {
	return func(n *berthv1.Node) {
		n.Conditions = append(n.Conditions, &berthv1.NodeCondition{Type: typ, Message: typ + " is broken"})
	}
}

func passing(typ string) nodeOpt {
	return func(n *berthv1.Node) {
		n.Conditions = append(n.Conditions, &berthv1.NodeCondition{Type: typ, Ok: true})
	}
}

func availability(a berthv1.NodeAvailability) nodeOpt {
	return func(n *berthv1.Node) { n.Availability = a }
}

func capacity(milliCPUs, memory int64) nodeOpt {
	return func(n *berthv1.Node) { n.Capacity = &berthv1.Resources{MilliCpus: milliCPUs, MemoryBytes: memory} }
}

func images(refs ...string) nodeOpt {
	return func(n *berthv1.Node) { n.Images = refs }
}

type taskOpt func(*berthv1.Task)

// task returns a pending task of service with the busybox image.
func task(id, service string, opts ...taskOpt) *berthv1.Task {
	t := &berthv1.Task{
		Meta:         &berthv1.Meta{Id: id},
		Namespace:    "default",
		App:          "app",
		Service:      service,
		ServiceId:    "svc-" + service,
		Spec:         &berthv1.ServiceSpec{Image: "busybox"},
		DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
		Status:       &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_PENDING},
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// on presets the node of a pending task, as the orchestrator does in global
// mode.
func on(nodeID string) taskOpt {
	return func(t *berthv1.Task) { t.NodeId = nodeID }
}

// running makes a snapshot task: running on a node.
func running(nodeID string) taskOpt {
	return func(t *berthv1.Task) {
		t.NodeId = nodeID
		t.Status.State = berthv1.TaskState_TASK_STATE_RUNNING
	}
}

func state(s berthv1.TaskState) taskOpt {
	return func(t *berthv1.Task) { t.Status.State = s }
}

func reserve(milliCPUs, memory int64) taskOpt {
	return func(t *berthv1.Task) {
		t.Spec.Reservations = &berthv1.Resources{MilliCpus: milliCPUs, MemoryBytes: memory}
	}
}

func constraints(exprs ...string) taskOpt {
	return func(t *berthv1.Task) {
		if t.Spec.Placement == nil {
			t.Spec.Placement = &berthv1.Placement{}
		}
		t.Spec.Placement.Constraints = exprs
	}
}

func preferences(prefs ...string) taskOpt {
	return func(t *berthv1.Task) {
		if t.Spec.Placement == nil {
			t.Spec.Placement = &berthv1.Placement{}
		}
		t.Spec.Placement.Preferences = prefs
	}
}

// publish adds a host-mode published port.
func publish(port uint32, protocol, hostIP string) taskOpt {
	return publishMode(port, protocol, hostIP, berthv1.PublishMode_PUBLISH_MODE_HOST)
}

func publishMode(port uint32, protocol, hostIP string, mode berthv1.PublishMode) taskOpt {
	return func(t *berthv1.Task) {
		t.Spec.Ports = append(t.Spec.Ports, &berthv1.PortSpec{Target: 80, Published: port, Protocol: protocol, HostIp: hostIP, Mode: mode})
	}
}

func image(ref string) taskOpt {
	return func(t *berthv1.Task) { t.Spec.Image = ref }
}

func maxPerNode(n uint64) taskOpt {
	return func(t *berthv1.Task) {
		if t.Spec.Placement == nil {
			t.Spec.Placement = &berthv1.Placement{}
		}
		t.Spec.Placement.MaxReplicasPerNode = n
	}
}

// runsOn sets the task's platforms from "os/arch" strings.
func runsOn(specs ...string) taskOpt {
	return func(t *berthv1.Task) {
		if t.Spec.Placement == nil {
			t.Spec.Placement = &berthv1.Placement{}
		}
		for _, s := range specs {
			os, arch, _ := strings.Cut(s, "/")
			t.Spec.Placement.Platforms = append(t.Spec.Placement.Platforms, &berthv1.Platform{Os: os, Architecture: arch})
		}
	}
}

func strategy(s berthv1.SchedulingStrategy) taskOpt {
	return func(t *berthv1.Task) { t.Spec.Strategy = s }
}

func platformOf(os, arch string) nodeOpt {
	return func(n *berthv1.Node) { n.Platform = &berthv1.Platform{Os: os, Architecture: arch} }
}
