// Package nodestate says whether a node can take and keep tasks, from its
// status (the control plane's verdict on its session and gossip) and its
// conditions (what its agent checked of itself), and puts that in the
// words `berth node ls`, `berth ps`, the scheduler and the events use.
//
// A node is ready when its status is ready and every condition passes.
// A node whose session is up but which cannot run containers (containerd
// does not answer, its bridge or subnet belongs to something else, a CNI
// plugin is missing, its disk is full) is "not ready (REASON)": it gets no
// new tasks, and its tasks move elsewhere once it has stayed so for the
// grace the orchestrator gives it.
package nodestate

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Condition types: what an agent checks of its node, at start and
// continuously.
const (
	// Runtime: containerd answers on its socket.
	Runtime = "runtime"
	// Network: the node's bridge and container subnet are its own (no
	// other interface holds the subnet), and the bridge is up.
	Network = "network"
	// CNI: the CNI plugins the node needs are present.
	CNI = "cni"
	// Disk: the data directory's file system has free space and inodes
	// above the floor.
	Disk = "disk"
)

// Failing returns n's failing conditions, in the order the agent sent
// them.
func Failing(n *berthv1.Node) []*berthv1.NodeCondition {
	var out []*berthv1.NodeCondition
	for _, c := range n.GetConditions() {
		if !c.GetOk() {
			out = append(out, c)
		}
	}
	return out
}

// Ready reports whether n can take new tasks: its session is up and every
// condition passes.
func Ready(n *berthv1.Node) bool {
	return n.GetStatus() == berthv1.NodeStatus_NODE_STATUS_READY && len(Failing(n)) == 0
}

// NotReadySince reports whether n is connected but failing a condition,
// and since when: the earliest since of its failing conditions.
func NotReadySince(n *berthv1.Node) (time.Time, bool) {
	if n.GetStatus() != berthv1.NodeStatus_NODE_STATUS_READY {
		return time.Time{}, false
	}
	var since time.Time
	failing := false
	for _, c := range Failing(n) {
		at := c.GetSince().AsTime()
		if !failing || at.Before(since) {
			since = at
		}
		failing = true
	}
	return since, failing
}

// Reason is why n is not ready, as "TYPE: MESSAGE" of its first failing
// condition; "" when none fails.
func Reason(n *berthv1.Node) string {
	f := Failing(n)
	if len(f) == 0 {
		return ""
	}
	if f[0].GetMessage() == "" {
		return f[0].GetType()
	}
	return f[0].GetType() + ": " + f[0].GetMessage()
}

// Words is n's state as `berth node ls` shows it: "ready",
// "not ready (REASON)", "unreachable" or "down".
func Words(n *berthv1.Node) string {
	switch n.GetStatus() {
	case berthv1.NodeStatus_NODE_STATUS_READY:
		if r := Reason(n); r != "" {
			return "not ready (" + r + ")"
		}
		return "ready"
	case berthv1.NodeStatus_NODE_STATUS_UNREACHABLE:
		return "unreachable"
	case berthv1.NodeStatus_NODE_STATUS_DOWN:
		return "down"
	}
	return ""
}
