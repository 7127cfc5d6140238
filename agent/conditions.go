package agent

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/berthproject/berth/agent/network"
	"github.com/berthproject/berth/agent/nodecheck"
	"github.com/berthproject/berth/agent/runtime/containerd"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"golang.org/x/sys/unix"
)

// pinger is a runtime that can say whether its daemon answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// newChecker makes the node's checker from the agent's configuration:
// the runtime check when the runtime can be asked, the network check once
// the container network has its subnet, and the disk check of the data
// directory. Changed conditions go to the session.
func (a *Agent) newChecker() (*nodecheck.Checker, error) {
	diskFloor, err := nodecheck.ParseFloor(a.cfg.DiskFloor)
	if err != nil {
		return nil, fmt.Errorf("agent: --disk-floor: %w", err)
	}
	inodeFloor, err := nodecheck.ParseFloor(a.cfg.InodeFloor)
	if err != nil {
		return nil, fmt.Errorf("agent: --inode-floor: %w", err)
	}
	probes := nodecheck.Probes{Disk: func() (nodecheck.DiskFacts, error) { return diskFacts(a.cfg.DataDir) }}
	if p, ok := a.rt.(pinger); ok {
		probes.Runtime = p.Ping
		probes.RuntimeAddress = a.cfg.ContainerdAddress
		if probes.RuntimeAddress == "" {
			probes.RuntimeAddress = containerd.DefaultAddress
		}
	}
	if a.network != nil {
		probes.Network = a.network.facts
	}
	return nodecheck.New(nodecheck.Config{
		Probes:    probes,
		DiskFloor: diskFloor, InodeFloor: inodeFloor,
		Period: a.cfg.CheckPeriod,
		Changed: func(cs []*berthv1.NodeCondition) {
			if a.session != nil {
				a.session.ConditionsChanged(cs)
			}
		},
		Log: a.log.With("component", "nodecheck"),
	}), nil
}

// diskFacts reads the free bytes and inodes of dir's file system.
func diskFacts(dir string) (nodecheck.DiskFacts, error) {
	f := nodecheck.DiskFacts{Path: dir}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return f, err
	}
	bs := uint64(st.Bsize)
	f.Total, f.Free = st.Blocks*bs, st.Bavail*bs
	f.Inodes, f.FreeInodes = st.Files, st.Ffree
	return f, nil
}

// facts is the network probe: the node's subnet (invalid before the
// control plane gave one), its own device, and the addresses of the
// agent's network namespace.
func (n *lazyNetwork) facts(context.Context) (nodecheck.NetworkFacts, error) {
	n.mu.Lock()
	subnet := n.subnet
	n.mu.Unlock()
	f := nodecheck.NetworkFacts{Own: network.DeviceName(n.name)}
	if !subnet.IsValid() {
		return f, nil
	}
	f.Subnet = subnet
	addrs, err := network.InterfaceAddresses()
	if err != nil {
		return f, err
	}
	for _, a := range addrs {
		f.Holders = append(f.Holders, nodecheck.Holder{Interface: a.Interface, Kind: a.Kind, Prefix: a.Prefix})
	}
	return f, nil
}

// reportStatus passes a task's status to the session, and asks the
// checker to look at once when the task failed in a way that may come
// from a failing condition (containerd gone, the disk full).
func (a *Agent) reportStatus(taskID string, st *berthv1.TaskStatus) {
	a.session.Report(taskID, st)
	switch st.GetState() {
	case berthv1.TaskState_TASK_STATE_REJECTED, berthv1.TaskState_TASK_STATE_FAILED:
		if a.checker != nil && st.GetErr() != "" && nodecheck.PointsAtCondition(fmt.Errorf("%s", st.GetErr())) {
			a.checker.Kick()
		}
	}
}

// subnetOf parses the subnet of a welcome; invalid when it has none.
func subnetOf(w *berthv1.SessionWelcome) netip.Prefix {
	p, err := netip.ParsePrefix(w.GetSubnet())
	if err != nil {
		return netip.Prefix{}
	}
	return p.Masked()
}
