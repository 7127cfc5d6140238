package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file makes and adopts the overlay device; overlay.go keeps what is
// programmed on it in step with the network map.

// NewOverlay creates the node's VXLAN device in the calling thread's
// network namespace, or adopts the one a previous agent left: kept if its
// settings are still right (with the neighbors and routes on it, which the
// next Sync reconciles), made again if not.
func NewOverlay(cfg OverlayConfig) (*Overlay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultVXLANPort
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("overlay: netlink: %w", err)
	}
	o := &Overlay{
		name:     overlayName(cfg.Node),
		addr:     overlayAddr(cfg.Subnet),
		subnet:   cfg.Subnet.Masked(),
		underlay: cfg.Address,
		h:        h,
		peers:    map[netip.Addr]*peerState{},
		routes:   map[ipv4]*routeState{},
	}
	o.log = slog.Default().With("component", "overlay", "device", o.name)
	if err := o.setup(cfg); err != nil {
		h.Close()
		return nil, fmt.Errorf("overlay of node %q: %w", cfg.Node, err)
	}
	return o, nil
}

func (o *Overlay) setup(cfg OverlayConfig) error {
	underMTU, local, err := underlayOf(o.h, cfg.Address)
	if err != nil {
		return err
	}
	o.mtu = underMTU - vxlanOverhead
	want := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: o.name, MTU: o.mtu, HardwareAddr: overlayMAC(o.addr)},
		VxlanId:   overlayVNI(cfg.Subnet),
		Port:      cfg.Port,
		Learning:  false,
	}
	if local {
		// The outer source is the node's address even when the node has
		// several; peers see the address the map gives them.
		want.SrcAddr = cfg.Address.AsSlice()
	}
	adopted := false
	if cur, err := o.h.LinkByName(o.name); err == nil {
		if sameVxlan(cur, want) {
			adopted = true
		} else {
			o.log.Info("recreating the overlay device: its settings changed")
			if err := o.h.LinkDel(cur); err != nil {
				return fmt.Errorf("delete outdated device %s: %w", o.name, err)
			}
		}
	} else if _, ok := errors.AsType[netlink.LinkNotFoundError](err); !ok {
		return fmt.Errorf("find device %s: %w", o.name, err)
	}
	if !adopted {
		if err := o.h.LinkAdd(want); err != nil {
			return fmt.Errorf("create VXLAN device %s (VNI %d, port %d): %w", o.name, want.VxlanId, want.Port, err)
		}
	}
	link, err := o.h.LinkByName(o.name)
	if err != nil {
		return fmt.Errorf("find device %s: %w", o.name, err)
	}
	o.index = link.Attrs().Index
	if err := o.ensureAddress(link); err != nil {
		return err
	}
	if err := o.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring %s up: %w", o.name, err)
	}
	if adopted {
		return o.load()
	}
	return nil
}

// underlayOf returns the MTU of the interface that holds addr and whether
// it is a real (non-loopback) interface of this namespace.
func underlayOf(h *netlink.Handle, addr netip.Addr) (mtu int, local bool, err error) {
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return 0, false, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); !ok || ip.Unmap() != addr {
			continue
		}
		link, err := h.LinkByIndex(a.LinkIndex)
		if err != nil {
			return 0, false, fmt.Errorf("find the interface of %s: %w", addr, err)
		}
		if link.Attrs().Flags&net.FlagLoopback != 0 {
			return defaultUnderlayMTU, false, nil
		}
		return link.Attrs().MTU, true, nil
	}
	// The address is not on this machine (behind NAT, say): the outer
	// source follows the routes, and the MTU is a guess.
	return defaultUnderlayMTU, false, nil
}

// sameVxlan reports whether cur is a VXLAN device with want's settings.
func sameVxlan(cur netlink.Link, want *netlink.Vxlan) bool {
	v, ok := cur.(*netlink.Vxlan)
	return ok &&
		v.VxlanId == want.VxlanId &&
		v.Port == want.Port &&
		!v.Learning && !v.FlowBased &&
		v.MTU == want.MTU &&
		v.HardwareAddr.String() == want.HardwareAddr.String() &&
		sameIP(v.SrcAddr, want.SrcAddr) &&
		sameIP(v.Group, nil)
}

func sameIP(a, b net.IP) bool {
	unset := func(ip net.IP) bool { return len(ip) == 0 || ip.IsUnspecified() }
	if unset(a) || unset(b) {
		return unset(a) && unset(b)
	}
	return a.Equal(b)
}

// ensureAddress leaves O/32 as the device's only IPv4 address.
func (o *Overlay) ensureAddress(link netlink.Link) error {
	want := netip.PrefixFrom(o.addr, 32)
	addrs, err := o.h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", o.name, err)
	}
	have := false
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if ok && p == want {
			have = true
			continue
		}
		if err := o.h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove address %s from %s: %w", a.IPNet, o.name, err)
		}
	}
	if !have {
		if err := o.h.AddrAdd(link, &netlink.Addr{IPNet: ipNet(want)}); err != nil {
			return fmt.Errorf("add %s to %s: %w", want, o.name, err)
		}
	}
	return nil
}

// load reads what an adopted device holds into o.peers and o.routes, so
// the first Sync removes what is no longer wanted. Entries that Berth
// would never have made are deleted here.
func (o *Overlay) load() error {
	routes, err := o.h.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: o.index, Protocol: routeProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes of %s: %w", o.name, err)
	}
	for _, r := range routes {
		dst, ok := prefixOf(r.Dst)
		switch {
		case !ok || dst.Bits() != 32:
			if err := o.h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("delete stray route %s on %s: %w", r.Dst, o.name, err)
			}
		case r.Gw == nil:
			o.peer(dst.Addr()).route = true
		default:
			gw, _ := netip.AddrFromSlice(r.Gw)
			o.routes[toIPv4(dst.Addr())] = &routeState{gw: toIPv4(gw.Unmap())}
		}
	}
	neighs, err := o.h.NeighList(o.index, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list neighbors of %s: %w", o.name, err)
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&netlink.NUD_PERMANENT == 0 {
			continue // the kernel's own, resolving or failed
		}
		ip = ip.Unmap()
		if n.HardwareAddr.String() != overlayMAC(ip).String() {
			if err := o.h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("delete stray neighbor %s on %s: %w", n.IP, o.name, err)
			}
			continue
		}
		o.peer(ip).neigh = true
	}
	fdb, err := o.h.NeighList(o.index, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("list forwarding entries of %s: %w", o.name, err)
	}
	for _, n := range fdb {
		dst, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue // the device's own multicast and unicast addresses
		}
		mac := n.HardwareAddr
		if len(mac) != 6 || mac[0] != 0x0a || mac[1] != 0x58 {
			if err := o.deleteFDB(mac); err != nil {
				return err
			}
			continue
		}
		p := o.peer(netip.AddrFrom4([4]byte(mac[2:6])))
		p.fdb, p.underlay, p.vni = true, dst.Unmap(), n.VNI
		if p.vni == 0 {
			// The kernel leaves out the VNI when it is the device's.
			p.vni = overlayVNI(o.subnet)
		}
	}
	return nil
}

// deleteOverlay deletes the overlay device of node name, if there is one.
func deleteOverlay(name string) error {
	link, err := netlink.LinkByName(overlayName(name))
	if err != nil {
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			return nil
		}
		return fmt.Errorf("overlay: find %s: %w", overlayName(name), err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("overlay: delete %s: %w", overlayName(name), err)
	}
	return nil
}

func (o *Overlay) Destroy() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errOverlayClosed
	}
	o.closed = true
	defer o.h.Close()
	link, err := o.h.LinkByName(o.name)
	if err != nil {
		if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
			return nil
		}
		return fmt.Errorf("overlay: find %s: %w", o.name, err)
	}
	if err := o.h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("overlay: delete %s: %w", o.name, err)
	}
	clear(o.peers)
	clear(o.routes)
	return nil
}
