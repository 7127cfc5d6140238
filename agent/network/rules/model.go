// Package rules owns the node's nftables table: the virtual IPs that
// spread connections over a service's ready tasks, the ingress and
// host-mode published ports, the masquerading of traffic that leaves the
// cluster or comes back to where it started, and the isolation of
// networks from each other and of containers from the node.
//
// A Model says what the table must hold; FromMap derives it from the
// network map and the node's containers without touching the kernel, and
// Table.Apply writes it in one netlink transaction. The agent keeps one
// Table per node and, after each change of the network map or of its
// containers, calls
//
//	table.Apply(rules.FromMap(snapshot, nodeRange, containers))
//
// which costs nothing when the model did not change, and otherwise writes
// only the chains and set elements that changed (see update.go).
package rules

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/berthproject/berth/agent/network/netmap"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Model is everything the node's table depends on. Its slices are sorted
// (see Normalize) so two models of the same cluster state are Equal.
type Model struct {
	// NodeRange holds every node's container subnet (and so every node's
	// overlay address).
	NodeRange netip.Prefix
	Networks  []Network
	VIPs      []VIP
	Ingress   []Published
	HostPorts []HostPort
}

// Network is one container network.
type Network struct {
	ID     string
	Subnet netip.Prefix
	// Internal networks have no way out of the cluster.
	Internal bool
}

// VIP is a service's virtual IP on one network and the addresses, on
// that network, of the service's ready tasks. Every port and protocol of
// the VIP leads to an endpoint's same port.
type VIP struct {
	Address   netip.Addr
	Endpoints []netip.Addr
}

// Published is an ingress port: it answers on every local address of
// every node and leads to a ready task of its service on any node.
type Published struct {
	Protocol  string // "tcp", "udp" or "sctp"
	Port      uint16
	Endpoints []netip.AddrPort
}

// HostPort is a host-mode published port of a container of this node.
type HostPort struct {
	Protocol string
	Port     uint16
	// HostIP limits the port to one local address; the zero Addr is every
	// local address.
	HostIP netip.Addr
	Target netip.AddrPort
}

// Local is a container of this node, as FromMap needs it.
type Local struct {
	ID string
	// Addresses are the container's addresses, one per network, in the
	// order of its networks.
	Addresses []netip.Addr
	HostPorts []Port
}

// Port is a host-mode published port of a local container.
type Port struct {
	Protocol  string
	Published uint16
	Target    uint16
	HostIP    netip.Addr
}

// FromMap derives the node's model from the network map and the node's
// containers. Entries the map holds in a form it cannot parse (a bad
// subnet or address) are left out: the control plane validated them, and
// one bad entry must not keep the rest of the node's rules away.
func FromMap(snap *netmap.Snapshot, nodeRange netip.Prefix, local []Local) Model {
	m := Model{NodeRange: nodeRange.Masked()}
	for id, n := range snap.Networks {
		p, err := netip.ParsePrefix(n.GetSubnet())
		if err != nil || !p.Addr().Is4() {
			continue
		}
		m.Networks = append(m.Networks, Network{ID: id, Subnet: p.Masked(), Internal: n.GetInternal()})
	}

	ready := map[string][]*berthv1.NetworkTask{}
	for _, t := range snap.Tasks {
		if t.GetReady() {
			ready[t.GetServiceId()] = append(ready[t.GetServiceId()], t)
		}
	}

	// Ingress ports are the cluster's: one service publishes a port. Should
	// two claim it, the service with the lowest id keeps it on every node.
	ingress := map[portKey]Published{}
	owner := map[portKey]string{}
	for id, sv := range snap.Services {
		tasks := ready[id]
		if vipMode(sv.GetEndpointMode()) {
			for _, v := range sv.GetVirtualIps() {
				a, err := netip.ParseAddr(v.GetAddress())
				if err != nil || !a.Is4() {
					continue
				}
				vip := VIP{Address: a}
				for _, t := range tasks {
					if ep, ok := addressOn(t, v.GetNetworkId()); ok {
						vip.Endpoints = append(vip.Endpoints, ep)
					}
				}
				m.VIPs = append(m.VIPs, vip)
			}
		}
		for _, p := range sv.GetPorts() {
			if !ingressMode(p.GetMode()) || p.GetPublished() == 0 || p.GetPublished() > 65535 ||
				p.GetTarget() == 0 || p.GetTarget() > 65535 {
				continue
			}
			k := portKey{protocol: protocol(p.GetProtocol()), port: uint16(p.GetPublished())}
			if prev, ok := owner[k]; ok && prev < id {
				continue
			}
			pub := Published{Protocol: k.protocol, Port: k.port}
			for _, t := range tasks {
				if a, ok := firstAddress(sv, t); ok {
					pub.Endpoints = append(pub.Endpoints, netip.AddrPortFrom(a, uint16(p.GetTarget())))
				}
			}
			owner[k] = id
			ingress[k] = pub
		}
	}
	for _, p := range ingress {
		m.Ingress = append(m.Ingress, p)
	}

	for _, c := range local {
		if len(c.Addresses) == 0 {
			continue
		}
		for _, p := range c.HostPorts {
			if p.Published == 0 || p.Target == 0 {
				continue
			}
			m.HostPorts = append(m.HostPorts, HostPort{
				Protocol: protocol(p.Protocol),
				Port:     p.Published,
				HostIP:   p.HostIP,
				Target:   netip.AddrPortFrom(c.Addresses[0], p.Target),
			})
		}
	}
	return m.Normalize()
}

type portKey struct {
	protocol string
	port     uint16
}

func vipMode(m berthv1.EndpointMode) bool {
	return m == berthv1.EndpointMode_ENDPOINT_MODE_UNSPECIFIED || m == berthv1.EndpointMode_ENDPOINT_MODE_VIP
}

func ingressMode(m berthv1.PublishMode) bool {
	return m == berthv1.PublishMode_PUBLISH_MODE_UNSPECIFIED || m == berthv1.PublishMode_PUBLISH_MODE_INGRESS
}

// protocol reads a port's protocol as Compose does: empty is tcp.
func protocol(p string) string {
	p = strings.ToLower(p)
	if p == "" {
		return "tcp"
	}
	return p
}

// addressOn is t's address on the network with id network.
func addressOn(t *berthv1.NetworkTask, network string) (netip.Addr, bool) {
	for _, n := range t.GetNetworks() {
		if n.GetNetworkId() == network {
			return parseAddress(n.GetAddress())
		}
	}
	return netip.Addr{}, false
}

// firstAddress is t's address on its service's first network, where
// ingress traffic reaches it. The task's networks follow the service's
// order, so its first one stands in when the names do not match.
func firstAddress(sv *berthv1.NetworkService, t *berthv1.NetworkTask) (netip.Addr, bool) {
	if nets := sv.GetNetworks(); len(nets) > 0 {
		for _, n := range t.GetNetworks() {
			if n.GetNetwork() == nets[0].GetNetwork() {
				return parseAddress(n.GetAddress())
			}
		}
	}
	if nets := t.GetNetworks(); len(nets) > 0 {
		return parseAddress(nets[0].GetAddress())
	}
	return netip.Addr{}, false
}

// parseAddress reads a task address, "10.128.0.5/24" (or a bare IP).
func parseAddress(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), p.Addr().Is4()
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil && a.Is4()
}

// Normalize returns a copy of m with every list sorted and free of
// duplicates, so that equal states compare Equal and the table's content
// does not depend on map iteration order.
func (m Model) Normalize() Model {
	out := Model{NodeRange: m.NodeRange.Masked()}
	out.Networks = slices.Clone(m.Networks)
	for i := range out.Networks {
		out.Networks[i].Subnet = out.Networks[i].Subnet.Masked()
	}
	slices.SortFunc(out.Networks, func(a, b Network) int {
		return cmp.Or(a.Subnet.Addr().Compare(b.Subnet.Addr()), cmp.Compare(a.Subnet.Bits(), b.Subnet.Bits()),
			strings.Compare(a.ID, b.ID))
	})
	out.Networks = slices.Compact(out.Networks)

	for _, v := range m.VIPs {
		eps := slices.Clone(v.Endpoints)
		slices.SortFunc(eps, netip.Addr.Compare)
		out.VIPs = append(out.VIPs, VIP{Address: v.Address, Endpoints: slices.Compact(eps)})
	}
	slices.SortStableFunc(out.VIPs, func(a, b VIP) int { return a.Address.Compare(b.Address) })
	out.VIPs = slices.CompactFunc(out.VIPs, func(a, b VIP) bool { return a.Address == b.Address })

	for _, p := range m.Ingress {
		eps := slices.Clone(p.Endpoints)
		slices.SortFunc(eps, netip.AddrPort.Compare)
		out.Ingress = append(out.Ingress, Published{Protocol: protocol(p.Protocol), Port: p.Port, Endpoints: slices.Compact(eps)})
	}
	slices.SortStableFunc(out.Ingress, func(a, b Published) int {
		return cmp.Or(strings.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	out.Ingress = slices.CompactFunc(out.Ingress, func(a, b Published) bool {
		return a.Protocol == b.Protocol && a.Port == b.Port
	})

	out.HostPorts = slices.Clone(m.HostPorts)
	for i := range out.HostPorts {
		out.HostPorts[i].Protocol = protocol(out.HostPorts[i].Protocol)
	}
	slices.SortFunc(out.HostPorts, func(a, b HostPort) int {
		return cmp.Or(strings.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port),
			a.HostIP.Compare(b.HostIP), a.Target.Compare(b.Target))
	})
	out.HostPorts = slices.Compact(out.HostPorts)
	return out
}

// Equal reports whether m and o describe the same table. Both should be
// normalized.
func (m Model) Equal(o Model) bool {
	return m.NodeRange == o.NodeRange &&
		slices.Equal(m.Networks, o.Networks) &&
		slices.EqualFunc(m.VIPs, o.VIPs, func(a, b VIP) bool {
			return a.Address == b.Address && slices.Equal(a.Endpoints, b.Endpoints)
		}) &&
		slices.EqualFunc(m.Ingress, o.Ingress, func(a, b Published) bool {
			return a.Protocol == b.Protocol && a.Port == b.Port && slices.Equal(a.Endpoints, b.Endpoints)
		}) &&
		slices.Equal(m.HostPorts, o.HostPorts)
}

// Validate reports the first entry of m the table cannot hold: IPv6, a
// zero port or an unknown protocol. FromMap never makes one.
func (m Model) Validate() error {
	for _, n := range m.Networks {
		if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() {
			return fmt.Errorf("network %s: subnet %s is not an IPv4 prefix", n.ID, n.Subnet)
		}
	}
	if m.NodeRange.IsValid() && !m.NodeRange.Addr().Is4() {
		return fmt.Errorf("node range %s is not an IPv4 prefix", m.NodeRange)
	}
	for _, v := range m.VIPs {
		if !v.Address.Is4() {
			return fmt.Errorf("virtual IP %s is not an IPv4 address", v.Address)
		}
		for _, ep := range v.Endpoints {
			if !ep.Is4() {
				return fmt.Errorf("virtual IP %s: endpoint %s is not an IPv4 address", v.Address, ep)
			}
		}
	}
	for _, p := range m.Ingress {
		if err := checkPort(p.Protocol, p.Port); err != nil {
			return fmt.Errorf("ingress port %d/%s: %w", p.Port, p.Protocol, err)
		}
		for _, ep := range p.Endpoints {
			if !ep.Addr().Is4() || ep.Port() == 0 {
				return fmt.Errorf("ingress port %d/%s: endpoint %s is not an IPv4 address and port", p.Port, p.Protocol, ep)
			}
		}
	}
	for _, hp := range m.HostPorts {
		if err := checkPort(hp.Protocol, hp.Port); err != nil {
			return fmt.Errorf("host port %d/%s: %w", hp.Port, hp.Protocol, err)
		}
		if hp.HostIP.IsValid() && !hp.HostIP.Is4() {
			return fmt.Errorf("host port %d/%s: host IP %s is not an IPv4 address", hp.Port, hp.Protocol, hp.HostIP)
		}
		if !hp.Target.Addr().Is4() || hp.Target.Port() == 0 {
			return fmt.Errorf("host port %d/%s: target %s is not an IPv4 address and port", hp.Port, hp.Protocol, hp.Target)
		}
	}
	return nil
}

func checkPort(protocol string, port uint16) error {
	if _, ok := protoNumbers[protocol]; !ok {
		return fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", protocol)
	}
	if port == 0 {
		return errors.New("port 0")
	}
	return nil
}
