package network

import (
	"net"
	"net/netip"

	"github.com/berthproject/berth/agent/network/netmap"
)

// PeersAndRoutes returns what the overlay of node self programs for snap:
// every other node as a peer, and a route for every address of every task
// on another node. Nodes and addresses that do not parse are left out: the
// control plane validated them, and one bad entry must not cut the rest.
func PeersAndRoutes(snap *netmap.Snapshot, self string) ([]Peer, []Route) {
	peers := make([]Peer, 0, len(snap.Nodes))
	for id, n := range snap.Nodes {
		if id == self {
			continue
		}
		addr, ok := parseNodeAddress(n.GetAddress())
		subnet, err := netip.ParsePrefix(n.GetSubnet())
		if !ok || err != nil {
			continue
		}
		peers = append(peers, Peer{NodeID: id, Address: addr, Subnet: subnet.Masked()})
	}
	var routes []Route
	for _, t := range snap.Tasks {
		node := t.GetNodeId()
		if node == "" || node == self {
			continue
		}
		for _, tn := range t.GetNetworks() {
			p, err := netip.ParsePrefix(tn.GetAddress())
			if err != nil {
				continue
			}
			routes = append(routes, Route{Dst: p.Addr(), NodeID: node})
		}
	}
	return peers, routes
}

// parseNodeAddress reads a node's IP; a host:port is accepted too.
func parseNodeAddress(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
