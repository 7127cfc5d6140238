package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/berthproject/berth/agent/network/nspath"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file says what on the machine belongs to this node's network, so
// that what an earlier run of the same node left is cleaned rather than
// mistaken for something foreign, and what is foreign is found.
//
// What marks a thing as this node's own is its name, which derives from
// the node's name: the overlay device (DeviceName) and the network
// namespaces (netnsPrefix). The namespaces' directory is the machine's,
// shared by agents in other network namespaces that may have the same
// name, so a namespace is this node's only when its host-side veth (named
// after the container) is in this node's namespace. Anything but the node's device holding an
// address in the node's container subnet is foreign: the agent reports it
// (the network condition) and leaves it be.

// DeviceName is the name of node's own device: the overlay device, which
// holds the first address of the node's container subnet. It is the only
// interface that may hold an address in that subnet.
func DeviceName(node string) string { return overlayName(node) }

// InterfaceAddress is an IPv4 address held by an interface of the calling
// thread's network namespace.
type InterfaceAddress struct {
	// Interface is the interface's name; Kind its type, as `ip -d link`
	// names it (bridge, vxlan, veth, dummy, device, ...).
	Interface, Kind string
	// Prefix is the address and its prefix length.
	Prefix netip.Prefix
}

// InterfaceAddresses lists every IPv4 address of the calling thread's
// network namespace with the interface that holds it: what the node's
// network condition checks its subnet against.
func InterfaceAddresses() ([]InterfaceAddress, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	byIndex := make(map[int]netlink.Link, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := make([]InterfaceAddress, 0, len(addrs))
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if !ok {
			continue
		}
		ia := InterfaceAddress{Prefix: p, Interface: fmt.Sprintf("#%d", a.LinkIndex)}
		if l, ok := byIndex[a.LinkIndex]; ok {
			ia.Interface, ia.Kind = l.Attrs().Name, l.Type()
		}
		out = append(out, ia)
	}
	return out, nil
}

// sweepStale removes the network namespaces of this node's prefix that no
// record accounts for and whose veths are in this node's namespace: an
// attach that crashed before writing its record, or records lost with the
// data directory. Their veths would go with them once the kernel gets to
// it; they are deleted at once. New calls it before any Attach, so
// nothing it removes is being set up.
func (n *Node) sweepStale() error {
	ids, err := n.records.ids()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	known := map[string]bool{}
	for _, id := range ids {
		rec, ok, err := n.records.get(id)
		if err == nil && ok && rec.NetNSPath != n.netnsPath(id) {
			continue // a record of another path names no namespace here
		}
		// An unreadable record's namespace is left for Detach, which
		// knows its name from the id.
		known[id] = true
	}
	var errs []error
	prefix := netnsPrefix(n.cfg.Name)
	entries, err := os.ReadDir(n.cfg.NetNSDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("network: list %s: %w", n.cfg.NetNSDir, err))
	}
	for _, e := range entries {
		id, ours := strings.CutPrefix(e.Name(), prefix)
		if !ours || known[id] {
			continue
		}
		// The directory is the machine's: an agent of the same name in
		// another network namespace (another cluster's, a test's) keeps
		// its containers' namespaces there too. Only one whose veth is in
		// this namespace is this node's.
		found, err := deleteStaleVeths(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !found {
			continue
		}
		n.log.Info("removed a network namespace an earlier run of this node left", "netns", e.Name())
		errs = append(errs, nspath.Remove(n.netnsPath(id)))
	}
	return errors.Join(errs...)
}

// deleteStaleVeths deletes the host-side veths of container id, whose
// record is lost, from the calling thread's network namespace; found says
// whether there was any. The names derive from the id and the interface's
// index, made in order, so the first missing one ends the search.
func deleteStaleVeths(id string) (found bool, err error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return false, fmt.Errorf("network: netlink: %w", err)
	}
	defer h.Close()
	for i := 0; ; i++ {
		name := hostVethName(id, i)
		if _, err := h.LinkByName(name); err != nil {
			return found, nil
		}
		found = true
		if err := deleteVeths(h, []Link{{Host: name}}); err != nil {
			return found, fmt.Errorf("network: %w", err)
		}
	}
}
