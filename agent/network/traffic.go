package network

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Traffic is what a container's interfaces received and sent so far, in
// bytes; loopback is left out, being the container talking to itself.
type Traffic struct {
	RxBytes, TxBytes uint64
}

// Traffic reads the interface counters of container id, from its network
// namespace.
func (n *Node) Traffic(id string) (Traffic, error) {
	return trafficIn(n.netnsPath(id))
}

// trafficIn sums the counters of the interfaces of the network namespace
// at path, but loopback, through a netlink socket opened in it: no thread
// of ours enters the namespace.
func trafficIn(path string) (Traffic, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return Traffic{}, fmt.Errorf("network: open netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return Traffic{}, fmt.Errorf("network: netlink in netns %s: %w", path, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return Traffic{}, fmt.Errorf("network: links in netns %s: %w", path, err)
	}
	var t Traffic
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.Statistics == nil {
			continue
		}
		t.RxBytes += a.Statistics.RxBytes
		t.TxBytes += a.Statistics.TxBytes
	}
	return t, nil
}
