package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The overlay carries container traffic between nodes: one VXLAN device per
// node, no learning and no multicast. The agent programs every remote node
// as a static neighbor and forwarding entry, and every remote container
// address as a route through that node's overlay address.
//
// Node N's overlay address O_N is the first host of its container subnet,
// its MAC is derived from O_N, and its VNI from the subnet: everything a
// peer needs follows from the (address, subnet) pair in the network map.
// Distinct VNIs let two agents share one network namespace and UDP port.

const (
	// DefaultVXLANPort is the IANA VXLAN port.
	DefaultVXLANPort = 4789
	// vxlanOverhead is what VXLAN over IPv4 adds to a frame: outer IP
	// (20), UDP (8), VXLAN (8) and inner Ethernet (14) headers.
	vxlanOverhead = 50
	// defaultUnderlayMTU is assumed when the node's address is on the
	// loopback interface or on none.
	defaultUnderlayMTU = 1500
)

// OverlayConfig describes the overlay of one node.
type OverlayConfig struct {
	// Node is the node name; the device name derives from it.
	Node string
	// Subnet is the node's container subnet (Node.subnet); its first host
	// is the node's overlay address.
	Subnet netip.Prefix
	// Address is the node's own IP on the underlay, where peers send its
	// overlay traffic.
	Address netip.Addr
	// Port is the VXLAN UDP port; 0 means DefaultVXLANPort. Every node of
	// a cluster must use the same port.
	Port int
}

// Validate reports every problem in c.
func (c OverlayConfig) Validate() error {
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("overlay config: Node is empty; set it to the agent's node name"))
	}
	if !c.Subnet.IsValid() || !c.Subnet.Addr().Is4() || c.Subnet.Bits() > 30 {
		errs = append(errs, fmt.Errorf("overlay config: Subnet %v must be the node's IPv4 container subnet, /30 or larger", c.Subnet))
	}
	if !c.Address.Is4() {
		errs = append(errs, fmt.Errorf("overlay config: Address %v must be the node's IPv4 address", c.Address))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("overlay config: Port %d is not a UDP port", c.Port))
	}
	return errors.Join(errs...)
}

// Peer is another node as the overlay sees it.
type Peer struct {
	NodeID string
	// Address is the node's underlay IP.
	Address netip.Addr
	// Subnet is the node's container subnet.
	Subnet netip.Prefix
}

// Route sends a container address to the node that runs the container.
type Route struct {
	Dst    netip.Addr
	NodeID string
}

// Overlay is a node's VXLAN device and what is programmed on it. It is safe
// for concurrent use.
type Overlay struct {
	name     string
	index    int
	mtu      int
	addr     netip.Addr // O, the node's own overlay address
	subnet   netip.Prefix
	underlay netip.Addr
	log      *slog.Logger

	mu sync.Mutex
	// h is bound to the namespace NewOverlay ran in, whichever thread
	// calls later.
	h      *netlink.Handle
	closed bool
	// peers and routes are what the kernel holds, as far as this
	// Overlay knows: Sync diffs the wanted state against them and makes
	// netlink calls for the differences only.
	peers  map[netip.Addr]*peerState // by the peer's overlay address
	routes map[ipv4]*routeState      // by destination
	gen    uint64                    // Sync's generation, marks the routes it still wants
}

// peerState is what is programmed for one peer: its forwarding entry
// (MAC -> underlay address and VNI), neighbor (overlay address -> MAC) and
// route (overlay address -> device). A part may be missing after an error
// or a crash.
type peerState struct {
	fdb      bool
	underlay netip.Addr
	vni      int
	neigh    bool
	route    bool
}

type routeState struct {
	gw  ipv4
	gen uint64
}

// ipv4 is an IPv4 address as a map key: Sync looks up every route of the
// map in o.routes, and a uint32 hashes several times faster than a
// netip.Addr.
type ipv4 uint32

func toIPv4(a netip.Addr) ipv4 {
	b := a.As4()
	return ipv4(b[0])<<24 | ipv4(b[1])<<16 | ipv4(b[2])<<8 | ipv4(b[3])
}

func (a ipv4) addr() netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

// overlayName names the VXLAN device of node: "bx" and 8 hex digits.
func overlayName(node string) string {
	sum := sha256.Sum256([]byte(node))
	return "bx" + hex.EncodeToString(sum[:4])
}

// overlayAddr is the overlay address of the node with container subnet s.
func overlayAddr(s netip.Prefix) netip.Addr { return s.Masked().Addr().Next() }

// overlayVNI is the VNI of the node with container subnet s: the subnet's
// first 24 bits, unique per /24 (and per larger subnet).
func overlayVNI(s netip.Prefix) int {
	b := s.Masked().Addr().As4()
	return int(b[0])<<16 | int(b[1])<<8 | int(b[2])
}

// overlayMAC is the MAC of the node whose overlay address is o.
func overlayMAC(o netip.Addr) net.HardwareAddr {
	b := o.As4()
	return net.HardwareAddr{0x0a, 0x58, b[0], b[1], b[2], b[3]}
}

func (o *Overlay) peer(gw netip.Addr) *peerState {
	p, ok := o.peers[gw]
	if !ok {
		p = &peerState{}
		o.peers[gw] = p
	}
	return p
}

// MTU is the device's MTU, which container interfaces use too.
func (o *Overlay) MTU() int { return o.mtu }

// Address is the node's overlay address: the source of the node's own
// traffic to remote containers.
func (o *Overlay) Address() netip.Addr { return o.addr }

// Name is the VXLAN device's name.
func (o *Overlay) Name() string { return o.name }

// errOverlayClosed is returned by Sync after Close or Destroy.
var errOverlayClosed = errors.New("overlay: closed")

type wantPeer struct {
	underlay netip.Addr
	vni      int
}

// Sync makes the device's neighbors, forwarding entries and routes match
// peers and routes: what is missing is added, what is no longer wanted is
// removed. Peers at this node's own address (other agents on the same
// machine, whose containers the shared routing table already reaches) or
// with this node's subnet are skipped, and so are the routes to their
// tasks. A route whose destination another device already holds is left
// to it: a container on this machine wins over the overlay. Sync makes
// netlink calls for the changes since the last Sync only; on errors it
// goes on with the rest and the next Sync retries what failed.
func (o *Overlay) Sync(peers []Peer, routes []Route) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errOverlayClosed
	}
	var errs []error
	want := make(map[netip.Addr]wantPeer, len(peers))
	gateways := make(map[string]ipv4, len(peers))
	for _, p := range peers {
		if !p.Address.Is4() || !p.Subnet.Addr().Is4() {
			errs = append(errs, fmt.Errorf("overlay: node %s has address %v and subnet %v; want IPv4", p.NodeID, p.Address, p.Subnet))
			continue
		}
		if p.Address == o.underlay || p.Subnet.Masked() == o.subnet {
			continue
		}
		gw := overlayAddr(p.Subnet)
		want[gw] = wantPeer{underlay: p.Address, vni: overlayVNI(p.Subnet)}
		gateways[p.NodeID] = toIPv4(gw)
	}

	// Peers first, so that the routes through them work once added.
	for gw, w := range want {
		if err := o.ensurePeer(gw, w); err != nil {
			errs = append(errs, err)
		}
	}

	errs = append(errs, o.syncRoutes(routes, gateways)...)

	for gw, st := range o.peers {
		if _, ok := want[gw]; !ok {
			if err := o.removePeer(gw, st); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// syncRoutes adds the routes to the containers of the peers in gateways
// (node id -> overlay address) and removes the others.
func (o *Overlay) syncRoutes(routes []Route, gateways map[string]ipv4) (errs []error) {
	o.gen++
	var lastNode string
	var lastGW ipv4
	lastOK := false
	kept := 0 // routes marked with this generation
	for _, r := range routes {
		// A task's addresses come one after another: skip the lookup.
		if r.NodeID != lastNode || lastNode == "" {
			lastGW, lastOK = gateways[r.NodeID]
			lastNode = r.NodeID
		}
		if !lastOK {
			continue
		}
		gw := lastGW
		if !r.Dst.Is4() {
			errs = append(errs, fmt.Errorf("overlay: route to %v on node %s: not an IPv4 address", r.Dst, r.NodeID))
			continue
		}
		dst := toIPv4(r.Dst)
		st, ok := o.routes[dst]
		switch {
		case ok && st.gen == o.gen:
			// Listed twice: the first wins.
		case ok && st.gw == gw:
			st.gen = o.gen
			kept++
		case ok:
			// The address moved to another node. On failure the old
			// gateway stays recorded, and the next Sync tries again.
			st.gen = o.gen
			if err := o.h.RouteReplace(o.route(r.Dst, gw.addr())); err != nil {
				errs = append(errs, fmt.Errorf("overlay: route %s via %s: %w", r.Dst, gw.addr(), err))
			} else {
				st.gw = gw
			}
			kept++
		default:
			added, err := o.addRoute(r.Dst, gw.addr())
			if err != nil {
				errs = append(errs, err)
			}
			if added {
				o.routes[dst] = &routeState{gw: gw, gen: o.gen}
				kept++
			}
		}
	}
	// The routes not marked are stale. The pass stops once they are all
	// gone, at once when there were none.
	for dst, st := range o.routes {
		if kept == len(o.routes) {
			break
		}
		if st.gen == o.gen {
			continue
		}
		if err := o.deleteRoute(dst.addr()); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(o.routes, dst)
	}
	return errs
}

// ensurePeer programs what is missing or different of peer gw.
func (o *Overlay) ensurePeer(gw netip.Addr, w wantPeer) error {
	st := o.peer(gw)
	mac := overlayMAC(gw)
	if !st.fdb || st.underlay != w.underlay || st.vni != w.vni {
		// The device's port applies to the entry: every node uses the
		// same one.
		if err := o.h.NeighSet(&netlink.Neigh{
			LinkIndex:    o.index,
			Family:       unix.AF_BRIDGE,
			Flags:        netlink.NTF_SELF,
			State:        netlink.NUD_PERMANENT,
			IP:           w.underlay.AsSlice(),
			HardwareAddr: mac,
			VNI:          w.vni,
		}); err != nil {
			return fmt.Errorf("overlay: forwarding entry %s -> %s VNI %d: %w", mac, w.underlay, w.vni, err)
		}
		st.fdb, st.underlay, st.vni = true, w.underlay, w.vni
	}
	if !st.neigh {
		if err := o.h.NeighSet(&netlink.Neigh{
			LinkIndex:    o.index,
			Family:       netlink.FAMILY_V4,
			State:        netlink.NUD_PERMANENT,
			IP:           gw.AsSlice(),
			HardwareAddr: mac,
		}); err != nil {
			return fmt.Errorf("overlay: neighbor %s -> %s: %w", gw, mac, err)
		}
		st.neigh = true
	}
	if !st.route {
		added, err := o.addRoute(gw, netip.Addr{})
		if err != nil {
			return err
		}
		st.route = added
	}
	return nil
}

// removePeer deletes what is programmed of peer gw.
func (o *Overlay) removePeer(gw netip.Addr, st *peerState) error {
	if st.route {
		if err := o.deleteRoute(gw); err != nil {
			return err
		}
		st.route = false
	}
	if st.neigh {
		err := o.h.NeighDel(&netlink.Neigh{LinkIndex: o.index, Family: netlink.FAMILY_V4, IP: gw.AsSlice()})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("overlay: delete neighbor %s: %w", gw, err)
		}
		st.neigh = false
	}
	if st.fdb {
		if err := o.deleteFDB(overlayMAC(gw)); err != nil {
			return err
		}
		st.fdb = false
	}
	delete(o.peers, gw)
	return nil
}

// deleteFDB deletes the forwarding entry of mac with all its
// destinations: an any-address destination matches them all.
func (o *Overlay) deleteFDB(mac net.HardwareAddr) error {
	err := o.h.NeighDel(&netlink.Neigh{
		LinkIndex:    o.index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		IP:           net.IPv4zero.To4(),
		HardwareAddr: mac,
	})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("overlay: delete forwarding entry %s: %w", mac, err)
	}
	return nil
}

// route is the route to dst through the device: via gw on the overlay, or
// straight out of the device if gw is the zero Addr.
func (o *Overlay) route(dst, gw netip.Addr) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: o.index,
		Dst:       ipNet(netip.PrefixFrom(dst, 32)),
		Protocol:  routeProtocol,
		Scope:     netlink.SCOPE_LINK,
	}
	if gw.IsValid() {
		r.Gw = gw.AsSlice()
		r.Flags = int(netlink.FLAG_ONLINK)
		r.Scope = netlink.SCOPE_UNIVERSE
	}
	return r
}

// addRoute adds the route to dst via gw and reports whether the device now
// holds it. A route to dst through another device wins and is left alone.
func (o *Overlay) addRoute(dst, gw netip.Addr) (bool, error) {
	r := o.route(dst, gw)
	err := o.h.RouteAdd(r)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return false, fmt.Errorf("overlay: route %s via %s: %w", dst, gw, err)
	}
	cur, gerr := o.h.RouteGet(dst.AsSlice())
	if gerr != nil {
		return false, fmt.Errorf("overlay: route %s exists; looking it up: %w", dst, gerr)
	}
	if len(cur) == 0 || cur[0].LinkIndex != o.index {
		o.log.Debug("route held by another device", "dst", dst)
		return false, nil
	}
	// Ours, from a state this Overlay lost track of.
	if err := o.h.RouteReplace(r); err != nil {
		return false, fmt.Errorf("overlay: route %s via %s: %w", dst, gw, err)
	}
	return true, nil
}

// deleteRoute deletes the device's route to dst, never another device's.
func (o *Overlay) deleteRoute(dst netip.Addr) error {
	err := o.h.RouteDel(&netlink.Route{
		LinkIndex: o.index,
		Dst:       ipNet(netip.PrefixFrom(dst, 32)),
		Protocol:  routeProtocol,
		// The kernel matches the scope exactly unless it is "nowhere".
		Scope: netlink.SCOPE_NOWHERE,
	})
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("overlay: delete route %s: %w", dst, err)
	}
	return nil
}

// Close releases the netlink socket and leaves the device and everything
// on it in place, for the next agent to adopt.
func (o *Overlay) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		o.h.Close()
	}
	return nil
}

// Destroy deletes the device, and with it every neighbor, forwarding entry
// and route on it: for a node leaving the cluster, and for tests.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}
