package network

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/agent/network/rules"
)

// A VIP or ingress port picks an endpoint for the first packet of a
// connection only; conntrack sends the rest where the first went. For TCP
// that is what we want: a connection to an endpoint that leaves ends on its
// own. A UDP "connection" is only a conntrack entry, which every packet
// keeps alive (30 s, 120 s once a stream), so a client that keeps sending
// from one port would stay with an endpoint that left, and hear nothing
// once it is gone. As kube-proxy does, the node deletes those entries once
// the rules no longer lead to the endpoint; the next packet then picks a
// current one.

// staleUDP names the UDP conntrack entries that lead to an endpoint that
// left a VIP or an ingress port.
type staleUDP struct {
	// Endpoint is the address the entries' replies come from.
	Endpoint netip.Addr
	// VIP is the virtual IP the entries were sent to; the zero Addr for
	// an ingress port.
	VIP netip.Addr
	// Port is the ingress port the entries were sent to (on any local
	// address); 0 for a VIP.
	Port uint16
}

func (s staleUDP) String() string {
	if s.VIP.IsValid() {
		return fmt.Sprintf("%s via VIP %s", s.Endpoint, s.VIP)
	}
	return fmt.Sprintf("%s via ingress port %d/udp", s.Endpoint, s.Port)
}

// staleUDPFlows lists what to delete after the rules went from old to new:
// every endpoint address that leads from a VIP (any protocol, so UDP too)
// or a UDP ingress port in old and not in new, also when the VIP or port
// itself is gone. The list is sorted.
func staleUDPFlows(old, new rules.Model) []staleUDP {
	var out []staleUDP

	vips := map[netip.Addr][]netip.Addr{}
	for _, v := range new.VIPs {
		vips[v.Address] = append(vips[v.Address], v.Endpoints...)
	}
	for _, v := range old.VIPs {
		for _, ep := range v.Endpoints {
			if !slices.Contains(vips[v.Address], ep) {
				out = append(out, staleUDP{Endpoint: ep, VIP: v.Address})
			}
		}
	}

	// An ingress endpoint is an address and a target port; the entries
	// are found by the address, so an endpoint whose address stays (with
	// another target port) has left all the same.
	ports := map[uint16][]netip.AddrPort{}
	for _, p := range new.Ingress {
		if isUDP(p.Protocol) {
			ports[p.Port] = append(ports[p.Port], p.Endpoints...)
		}
	}
	for _, p := range old.Ingress {
		if !isUDP(p.Protocol) {
			continue
		}
		for _, ep := range p.Endpoints {
			if !slices.Contains(ports[p.Port], ep) {
				out = append(out, staleUDP{Endpoint: ep.Addr(), Port: p.Port})
			}
		}
	}

	slices.SortFunc(out, func(a, b staleUDP) int {
		return cmp.Or(a.VIP.Compare(b.VIP), cmp.Compare(a.Port, b.Port), a.Endpoint.Compare(b.Endpoint))
	})
	return slices.Compact(out)
}

func isUDP(protocol string) bool { return strings.EqualFold(protocol, "udp") }

// filter matches the entries s names: UDP, replied by s.Endpoint, sent to
// s.VIP or to port s.Port.
func (s staleUDP) filter() (*netlink.ConntrackFilter, error) {
	f := &netlink.ConntrackFilter{}
	errs := []error{
		f.AddProtocol(unix.IPPROTO_UDP),
		f.AddIP(netlink.ConntrackReplySrcIP, s.Endpoint.AsSlice()),
	}
	if s.VIP.IsValid() {
		errs = append(errs, f.AddIP(netlink.ConntrackOrigDstIP, s.VIP.AsSlice()))
	} else {
		errs = append(errs, f.AddPort(netlink.ConntrackOrigDstPort, s.Port))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("conntrack filter for %s: %w", s, err)
	}
	return f, nil
}

// deleteStaleUDP deletes the UDP conntrack entries of the endpoints that
// left between the rules old and new, in the node's network namespace
// (where the VIPs and ingress ports translate addresses). A failure is
// logged: the entries then expire on their own.
func (n *Node) deleteStaleUDP(old, new rules.Model) {
	stale := staleUDPFlows(old, new)
	if len(stale) == 0 {
		return
	}
	deleted, err := deleteConntrack(n.netns, stale)
	if err != nil {
		n.log.Warn("deleting the UDP conntrack entries of endpoints that left", "endpoints", len(stale), "deleted", deleted, "err", err)
		return
	}
	n.log.Debug("deleted the UDP conntrack entries of endpoints that left", "endpoints", len(stale), "deleted", deleted)
}

// deleteConntrack deletes the entries stale names from the conntrack table
// of the network namespace fd refers to, and returns how many it deleted.
func deleteConntrack(fd int, stale []staleUDP) (uint, error) {
	filters := make([]netlink.CustomConntrackFilter, 0, len(stale))
	for _, s := range stale {
		f, err := s.filter()
		if err != nil {
			return 0, err
		}
		filters = append(filters, f)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(fd), unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("netlink socket in the node's network namespace: %w", err)
	}
	defer h.Close()
	// One dump of the table for all the filters.
	deleted, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...)
	if err != nil {
		return deleted, fmt.Errorf("delete conntrack entries: %w", err)
	}
	return deleted, nil
}
