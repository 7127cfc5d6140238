package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berthproject/berth/agent/network/rules"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The routed datapath gives every container one veth per network and no
// bridge: the node routes each container address to its veth, and the
// container sends everything to a link-local gateway that answers from the
// node's side of every veth (as Calico does).

// gatewayIP is the node's address on every host-side veth and the next hop
// of every route in a container. Being link-local and the same everywhere,
// it costs no address of any network.
var gatewayIP = rules.Gateway

// containerTableBase + i is the routing table of interface eth<i> in a
// container, looked up for packets from its address.
const containerTableBase = 100

// routeProtocol marks the routes Berth makes (rtnetlink protocol 0xb3,
// "berth"), so that the overlay finds its own after a restart.
const routeProtocol netlink.RouteProtocol = 0xb3

// Interface is one network a container joins.
type Interface struct {
	NetworkID string
	// Address is the container's address with the network's prefix
	// length, e.g. 10.128.0.5/24.
	Address netip.Prefix
	// Internal networks have no way out: the container gets no default
	// route through them.
	Internal bool
}

// Link is one network interface made for a container. It is kept in the
// attachment record so that detaching after an agent restart knows what to
// delete.
type Link struct {
	// Host is the node-side veth name.
	Host string `json:"host"`
	// Container is the interface name inside the container (eth<i>).
	Container string       `json:"container"`
	Address   netip.Prefix `json:"address"`
	NetworkID string       `json:"network_id"`
}

// hostVethName names the node-side veth of network i of container id: "bv"
// and 12 hex digits fit the 15-byte interface name limit, and derive from
// the id so a restarted agent finds the veths of a container again.
func hostVethName(id string, i int) string {
	sum := sha256.Sum256([]byte(id + "/" + strconv.Itoa(i)))
	return rules.VethPrefix + hex.EncodeToString(sum[:6])
}

// containerIfName names network i's interface in the container.
func containerIfName(i int) string { return "eth" + strconv.Itoa(i) }

// hostSetup makes the node route between its interfaces. It is the only
// node-wide setting the datapath changes.
func hostSetup() error {
	return writeSysctl("/proc/sys/net/ipv4/ip_forward", "1")
}

// attachLinks connects the network namespace at netnsPath (container id)
// to each network in ifaces, in order: interface i is eth<i>. The node
// side is made in the calling thread's network namespace, which is the
// agent's own in production. On failure nothing is left behind.
func attachLinks(netnsPath, id string, ifaces []Interface, mtu int) (links []Link, err error) {
	for _, ifc := range ifaces {
		if !ifc.Address.Addr().Is4() {
			return nil, fmt.Errorf("network: container %s: address %v of network %s is not IPv4", id, ifc.Address, ifc.NetworkID)
		}
	}
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: open netns %s: %w", id, netnsPath, err)
	}
	defer ns.Close()
	// The container side goes through a socket opened in its namespace:
	// no thread of ours has to enter it.
	ctr, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: netlink in netns %s: %w", id, netnsPath, err)
	}
	defer ctr.Close()
	host, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("network: container %s: netlink: %w", id, err)
	}
	defer host.Close()

	defer func() {
		if err != nil {
			err = errors.Join(err, deleteVeths(host, links))
			links = nil
		}
	}()
	defaultSet := false
	for i, ifc := range ifaces {
		l := Link{
			Host:      hostVethName(id, i),
			Container: containerIfName(i),
			Address:   ifc.Address,
			NetworkID: ifc.NetworkID,
		}
		withDefault := !ifc.Internal && !defaultSet
		// A veth of this name is left from an attach that crashed before
		// its record was written: delete it, and its peer with it.
		if err := deleteVeths(host, []Link{l}); err != nil {
			return links, fmt.Errorf("network: container %s: %w", id, err)
		}
		if err := host.LinkAdd(&netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: l.Host, MTU: mtu},
			PeerName:      l.Container,
			PeerMTU:       uint32(mtu),
			PeerNamespace: netlink.NsFd(int(ns)),
		}); err != nil {
			return links, fmt.Errorf("network: container %s: create veth %s for network %s: %w", id, l.Host, ifc.NetworkID, err)
		}
		links = append(links, l)
		hostMAC, err := setupHostSide(host, l)
		if err != nil {
			return links, fmt.Errorf("network: container %s, network %s: %w", id, ifc.NetworkID, err)
		}
		if err := setupContainerSide(ctr, l, containerTableBase+i, ifc.Internal, hostMAC, withDefault); err != nil {
			return links, fmt.Errorf("network: container %s, network %s: %w", id, ifc.NetworkID, err)
		}
		defaultSet = defaultSet || withDefault
	}
	return links, nil
}

// setupHostSide configures the node end of l: the gateway address, the
// sysctls, and the route to the container's address. It returns the veth's
// MAC address, the container's gateway.
func setupHostSide(h *netlink.Handle, l Link) (net.HardwareAddr, error) {
	link, err := h.LinkByName(l.Host)
	if err != nil {
		return nil, fmt.Errorf("find veth %s: %w", l.Host, err)
	}
	conf := filepath.Join("/proc/sys/net/ipv4/conf", l.Host)
	// rp_filter: a container can only send from its own address.
	// route_localnet: DNAT from 127.0.0.1 (published ports) may leave
	// through the veth.
	for _, s := range []struct{ name, value string }{{"rp_filter", "1"}, {"route_localnet", "1"}} {
		if err := writeSysctl(filepath.Join(conf, s.name), s.value); err != nil {
			return nil, err
		}
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(gatewayIP, 32)), Scope: int(netlink.SCOPE_LINK)}); err != nil {
		return nil, fmt.Errorf("add %s to veth %s: %w", gatewayIP, l.Host, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bring veth %s up: %w", l.Host, err)
	}
	// Replace: a route the overlay made to this address for a task that
	// was on another node gives way to the container that is here now.
	if err := h.RouteReplace(&netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       ipNet(netip.PrefixFrom(l.Address.Addr(), 32)),
		Src:       gatewayIP.AsSlice(),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  routeProtocol,
	}); err != nil {
		return nil, fmt.Errorf("route %s to veth %s: %w", l.Address.Addr(), l.Host, err)
	}
	return link.Attrs().HardwareAddr, nil
}

// setupContainerSide configures the container end of l through ctr: its
// /32 address, the gateway's neighbor entry (so the container never needs
// ARP for it), the route to the network's subnet and, withDefault, the
// default route; and the interface's own routing table (see below).
func setupContainerSide(ctr *netlink.Handle, l Link, table int, internal bool, hostMAC net.HardwareAddr, withDefault bool) error {
	link, err := ctr.LinkByName(l.Container)
	if err != nil {
		return fmt.Errorf("find %s in the container: %w", l.Container, err)
	}
	idx := link.Attrs().Index
	addr := l.Address.Addr()
	if err := ctr.AddrAdd(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(addr, 32))}); err != nil {
		return fmt.Errorf("add %s to %s: %w", addr, l.Container, err)
	}
	if err := ctr.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring %s up: %w", l.Container, err)
	}
	if err := ctr.NeighSet(&netlink.Neigh{
		LinkIndex:    idx,
		Family:       netlink.FAMILY_V4,
		State:        netlink.NUD_PERMANENT,
		IP:           gatewayIP.AsSlice(),
		HardwareAddr: hostMAC,
	}); err != nil {
		return fmt.Errorf("neighbor %s on %s: %w", gatewayIP, l.Container, err)
	}
	subnet := l.Address.Masked()
	anywhere := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	via := func(dst netip.Prefix, table int) *netlink.Route {
		return &netlink.Route{
			LinkIndex: idx,
			Dst:       ipNet(dst),
			Gw:        gatewayIP.AsSlice(),
			Src:       addr.AsSlice(),
			Flags:     int(netlink.FLAG_ONLINK),
			Table:     table,
		}
	}
	// The main table: the network's subnet, and the way out.
	routes := []*netlink.Route{via(subnet, unix.RT_TABLE_MAIN)}
	if withDefault {
		routes = append(routes, via(anywhere, unix.RT_TABLE_MAIN))
	}
	// The interface's own table, for packets from its address: replies
	// leave through the veth the request came in by, whatever the main
	// table says. Without it, a container on several networks answers a
	// source outside the network's subnet (the node's 169.254.1.1 after
	// masquerading, a remote node's overlay address) through its default
	// interface, and the node's strict rp_filter drops the reply; and a
	// container on internal networks only could not answer the node at
	// all.
	routes = append(routes, via(subnet, table), &netlink.Route{
		LinkIndex: idx,
		Dst:       ipNet(netip.PrefixFrom(gatewayIP, 32)),
		Src:       addr.AsSlice(),
		Scope:     netlink.SCOPE_LINK,
		Table:     table,
	})
	if !internal {
		routes = append(routes, via(anywhere, table))
	}
	for _, r := range routes {
		if err := ctr.RouteAdd(r); err != nil {
			return fmt.Errorf("route %s in table %d on %s: %w", r.Dst, r.Table, l.Container, err)
		}
	}
	rule := netlink.NewRule()
	rule.Family = netlink.FAMILY_V4
	rule.Table = table
	rule.Priority = table
	// Rules belong to the namespace, not to eth<i>: one may be left from
	// an earlier attach to this namespace.
	if err := ctr.RuleDel(rule); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete leftover rule %d: %w", table, err)
	}
	rule.Src = ipNet(netip.PrefixFrom(addr, 32))
	if err := ctr.RuleAdd(rule); err != nil {
		return fmt.Errorf("rule from %s lookup %d: %w", addr, table, err)
	}
	return nil
}

// detachLinks deletes the node-side veths of links; their peers in the
// container and every route through them go with them. A veth that is
// already gone is not an error.
func detachLinks(links []Link) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("network: netlink: %w", err)
	}
	defer h.Close()
	if err := deleteVeths(h, links); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	return nil
}

func deleteVeths(h *netlink.Handle, links []Link) error {
	var errs []error
	for _, l := range links {
		link, err := h.LinkByName(l.Host)
		if err != nil {
			if _, ok := errors.AsType[netlink.LinkNotFoundError](err); !ok {
				errs = append(errs, fmt.Errorf("find veth %s: %w", l.Host, err))
			}
			continue
		}
		if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", l.Host, err))
		}
	}
	return errors.Join(errs...)
}

// writeSysctl writes value to the sysctl file at path. /proc/sys/net
// belongs to the network namespace of the writing thread.
func writeSysctl(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", path, value, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
