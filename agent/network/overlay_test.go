package network

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/berthproject/berth/agent/network/netmap"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newOverlayIn makes the overlay of cfg in the namespace at path and
// releases it when the test ends (the namespace takes the device with it).
func newOverlayIn(t testing.TB, path string, cfg OverlayConfig) *Overlay {
	t.Helper()
	var o *Overlay
	must(t, path, func() (err error) {
		o, err = NewOverlay(cfg)
		return err
	})
	t.Cleanup(func() { o.Close() })
	return o
}

// underlay links two node namespaces with a veth pair, a is given
// 10.251.<net>.1/24 and b 10.251.<net>.2/24.
func underlay(t testing.TB, a, b string, n byte) (netip.Addr, netip.Addr) {
	t.Helper()
	nsB, err := netns.GetFromPath(b)
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()
	ha, hb := handleIn(t, a), handleIn(t, b)
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "u0"}, PeerName: "u0", PeerNamespace: netlink.NsFd(int(nsB))}); err != nil {
		t.Fatal(err)
	}
	addrA := netip.AddrFrom4([4]byte{10, 251, n, 1})
	addrB := netip.AddrFrom4([4]byte{10, 251, n, 2})
	for _, s := range []struct {
		h    *netlink.Handle
		addr netip.Addr
	}{{ha, addrA}, {hb, addrB}} {
		l, err := s.h.LinkByName("u0")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(s.addr, 24))}); err != nil {
			t.Fatal(err)
		}
		if err := s.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return addrA, addrB
}

// standalone gives the namespace at path an underlay interface with addr,
// on a veth pair whose other end stays in the namespace.
func standalone(t testing.TB, path string, addr netip.Prefix) {
	t.Helper()
	h := handleIn(t, path)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "u0"}, PeerName: "u1"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"u0", "u1"} {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "u0" {
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOverlayAcrossNodes(t *testing.T) {
	requireRoot(t)
	n1, n2 := newNetNS(t, "node1"), newNetNS(t, "node2")
	c1, c2 := newNetNS(t, "c1"), newNetNS(t, "c2")
	addr1, addr2 := underlay(t, n1, n2, 0)
	peers := []Peer{
		{NodeID: "id1", Address: addr1, Subnet: netip.MustParsePrefix("10.252.1.0/24")},
		{NodeID: "id2", Address: addr2, Subnet: netip.MustParsePrefix("10.252.2.0/24")},
	}
	routes := []Route{
		{Dst: netip.MustParseAddr("10.253.0.2"), NodeID: "id1"},
		{Dst: netip.MustParseAddr("10.253.0.3"), NodeID: "id2"},
	}
	type node struct {
		ns, ctr string
		ifaces  []Interface
		o       *Overlay
	}
	app := func(a string) Interface { return Interface{NetworkID: "app", Address: netip.MustParsePrefix(a)} }
	nodes := []*node{
		{ns: n1, ctr: c1, ifaces: []Interface{app("10.253.0.2/24")}},
		// c2's default route is on another network than app.
		{ns: n2, ctr: c2, ifaces: []Interface{{NetworkID: "front", Address: netip.MustParsePrefix("10.254.0.3/24")}, app("10.253.0.3/24")}},
	}
	for i, n := range nodes {
		must(t, n.ns, hostSetup)
		// As strict as a host can be: reverse-path filtering everywhere.
		must(t, n.ns, func() error { return writeSysctl("/proc/sys/net/ipv4/conf/all/rp_filter", "1") })
		n.o = newOverlayIn(t, n.ns, OverlayConfig{Node: "node-" + peers[i].NodeID, Subnet: peers[i].Subnet, Address: peers[i].Address})
		if n.o.MTU() != 1450 {
			t.Errorf("overlay MTU = %d, want 1450 (the veth's 1500 - 50)", n.o.MTU())
		}
		if want := overlayAddr(peers[i].Subnet); n.o.Address() != want {
			t.Errorf("overlay address = %s, want %s", n.o.Address(), want)
		}
		must(t, n.ns, func() error {
			_, err := attachLinks(n.ctr, "ctr", n.ifaces, n.o.MTU())
			return err
		})
		// Sync runs from the test's goroutine: the overlay works in its
		// node's namespace from any thread.
		if err := n.o.Sync(peers, routes); err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}

	serveIn(t, c1, "10.253.0.2:8080", "c1")
	serveIn(t, c2, "10.253.0.3:8080", "c2")
	expectGreeting(t, c1, "10.253.0.3:8080", "c2")
	expectGreeting(t, c2, "10.253.0.2:8080", "c1")
	// The node itself reaches a remote container from its overlay address
	// (as masqueraded ingress traffic does), and the reply leaves c2 by
	// the app interface, not by its default route.
	expectGreeting(t, n1, "10.253.0.3:8080", "c2")

	// Without the route, the other container is out of reach.
	if err := nodes[0].o.Sync(peers, routes[:1]); err != nil {
		t.Fatal(err)
	}
	expectNoConnection(t, c1, "10.253.0.3:8080")
}

// overlayState is what the kernel holds on an overlay device.
type overlayState struct {
	routes map[string]string // dst -> gateway ("" for a device route)
	neighs map[string]string // overlay address -> MAC
	fdb    map[string]string // MAC -> underlay address and VNI
}

func readOverlay(t testing.TB, h *netlink.Handle, name string) overlayState {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	idx := l.Attrs().Index
	s := overlayState{routes: map[string]string{}, neighs: map[string]string{}, fdb: map[string]string{}}
	rs, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Protocol != routeProtocol {
			continue
		}
		gw := ""
		if r.Gw != nil {
			gw = r.Gw.String()
		}
		s.routes[r.Dst.String()] = gw
	}
	ns, err := h.NeighList(idx, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.State&netlink.NUD_PERMANENT != 0 {
			s.neighs[n.IP.String()] = n.HardwareAddr.String()
		}
	}
	fdb, err := h.NeighList(idx, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range fdb {
		if n.IP != nil {
			s.fdb[n.HardwareAddr.String()] = n.IP.String() + " vni " + strconv.Itoa(n.VNI)
		}
	}
	return s
}

func expectOverlay(t testing.TB, h *netlink.Handle, name string, want overlayState) {
	t.Helper()
	got := readOverlay(t, h, name)
	if !maps.Equal(got.routes, want.routes) {
		t.Errorf("routes on %s = %v, want %v", name, got.routes, want.routes)
	}
	if !maps.Equal(got.neighs, want.neighs) {
		t.Errorf("neighbors on %s = %v, want %v", name, got.neighs, want.neighs)
	}
	if !maps.Equal(got.fdb, want.fdb) {
		t.Errorf("forwarding entries on %s = %v, want %v", name, got.fdb, want.fdb)
	}
}

func TestOverlaySyncRemovesStale(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	standalone(t, node, netip.MustParsePrefix("10.251.1.1/24"))
	cfg := OverlayConfig{Node: "self", Subnet: netip.MustParsePrefix("10.252.1.0/24"), Address: netip.MustParseAddr("10.251.1.1")}
	o := newOverlayIn(t, node, cfg)
	h := handleIn(t, node)

	self := Peer{NodeID: "self", Address: cfg.Address, Subnet: cfg.Subnet}
	sameMachine := Peer{NodeID: "other-agent", Address: cfg.Address, Subnet: netip.MustParsePrefix("10.252.9.0/24")}
	p2 := Peer{NodeID: "n2", Address: netip.MustParseAddr("10.251.1.2"), Subnet: netip.MustParsePrefix("10.252.2.0/24")}
	p3 := Peer{NodeID: "n3", Address: netip.MustParseAddr("10.251.1.3"), Subnet: netip.MustParsePrefix("10.252.3.0/24")}
	r := func(dst, node string) Route { return Route{Dst: netip.MustParseAddr(dst), NodeID: node} }

	if err := o.Sync(
		[]Peer{self, sameMachine, p2, p3},
		[]Route{r("10.253.0.5", "n2"), r("10.253.0.6", "n3"), r("10.253.0.7", "self"), r("10.253.0.8", "other-agent"), r("10.253.0.9", "unknown")},
	); err != nil {
		t.Fatal(err)
	}
	expectOverlay(t, h, o.Name(), overlayState{
		routes: map[string]string{
			"10.252.2.1/32": "", "10.252.3.1/32": "",
			"10.253.0.5/32": "10.252.2.1", "10.253.0.6/32": "10.252.3.1",
		},
		neighs: map[string]string{"10.252.2.1": "0a:58:0a:fc:02:01", "10.252.3.1": "0a:58:0a:fc:03:01"},
		fdb: map[string]string{
			"0a:58:0a:fc:02:01": "10.251.1.2 vni " + strconv.Itoa(0x0afc02),
			"0a:58:0a:fc:03:01": "10.251.1.3 vni " + strconv.Itoa(0x0afc03),
		},
	})

	// n3 leaves, and with it its task.
	if err := o.Sync([]Peer{p2}, []Route{r("10.253.0.5", "n2")}); err != nil {
		t.Fatal(err)
	}
	only2 := overlayState{
		routes: map[string]string{"10.252.2.1/32": "", "10.253.0.5/32": "10.252.2.1"},
		neighs: map[string]string{"10.252.2.1": "0a:58:0a:fc:02:01"},
		fdb:    map[string]string{"0a:58:0a:fc:02:01": "10.251.1.2 vni " + strconv.Itoa(0x0afc02)},
	}
	expectOverlay(t, h, o.Name(), only2)

	// A restarted agent adopts the device with what is on it, and its
	// first Sync removes what went stale meanwhile.
	index := linkIndex(t, h, o.Name())
	o.Close()
	o = newOverlayIn(t, node, cfg)
	if got := linkIndex(t, h, o.Name()); got != index {
		t.Fatalf("after a restart the device has index %d, want %d (adopted)", got, index)
	}
	expectOverlay(t, h, o.Name(), only2)
	if err := o.Sync([]Peer{p2, p3}, []Route{r("10.253.0.5", "n3")}); err != nil {
		t.Fatal(err)
	}
	expectOverlay(t, h, o.Name(), overlayState{
		routes: map[string]string{"10.252.2.1/32": "", "10.252.3.1/32": "", "10.253.0.5/32": "10.252.3.1"},
		neighs: map[string]string{"10.252.2.1": "0a:58:0a:fc:02:01", "10.252.3.1": "0a:58:0a:fc:03:01"},
		fdb: map[string]string{
			"0a:58:0a:fc:02:01": "10.251.1.2 vni " + strconv.Itoa(0x0afc02),
			"0a:58:0a:fc:03:01": "10.251.1.3 vni " + strconv.Itoa(0x0afc03),
		},
	})
	// n2 changes address: its forwarding entry follows.
	p2.Address = netip.MustParseAddr("10.251.1.22")
	if err := o.Sync([]Peer{p2}, []Route{r("10.253.0.5", "n2")}); err != nil {
		t.Fatal(err)
	}
	expectOverlay(t, h, o.Name(), overlayState{
		routes: map[string]string{"10.252.2.1/32": "", "10.253.0.5/32": "10.252.2.1"},
		neighs: map[string]string{"10.252.2.1": "0a:58:0a:fc:02:01"},
		fdb:    map[string]string{"0a:58:0a:fc:02:01": "10.251.1.22 vni " + strconv.Itoa(0x0afc02)},
	})
	if err := o.Sync(nil, nil); err != nil {
		t.Fatal(err)
	}
	expectOverlay(t, h, o.Name(), overlayState{})
}

func linkIndex(t testing.TB, h *netlink.Handle, name string) int {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

func TestOverlayLocalRouteWins(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	ctr := newNetNS(t, "ctr")
	standalone(t, node, netip.MustParsePrefix("10.251.1.1/24"))
	cfg := OverlayConfig{Node: "self", Subnet: netip.MustParsePrefix("10.252.1.0/24"), Address: netip.MustParseAddr("10.251.1.1")}
	o := newOverlayIn(t, node, cfg)
	h := handleIn(t, node)
	peers := []Peer{{NodeID: "n2", Address: netip.MustParseAddr("10.251.1.2"), Subnet: netip.MustParsePrefix("10.252.2.0/24")}}
	dst := netip.MustParseAddr("10.253.0.5")

	// A container here holds the address (its task moved here before the
	// map said so, or another agent in this namespace runs it).
	var links []Link
	must(t, node, func() (err error) {
		links, err = attachLinks(ctr, "ctr", []Interface{{NetworkID: "app", Address: netip.PrefixFrom(dst, 24)}}, o.MTU())
		return err
	})
	local := linkIndex(t, h, links[0].Host)
	routeDev := func() int {
		t.Helper()
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(netip.PrefixFrom(dst, 32))}, netlink.RT_FILTER_DST)
		if err != nil || len(rs) != 1 {
			t.Fatalf("routes to %s: %v, %v; want one", dst, rs, err)
		}
		return rs[0].LinkIndex
	}
	for range 2 {
		if err := o.Sync(peers, []Route{{Dst: dst, NodeID: "n2"}}); err != nil {
			t.Fatal(err)
		}
		if got := routeDev(); got != local {
			t.Fatalf("route to %s is on link %d, want the container's veth %d", dst, got, local)
		}
	}
	if err := o.Sync(peers, nil); err != nil {
		t.Fatal(err)
	}
	if got := routeDev(); got != local {
		t.Fatalf("after the overlay dropped it, the route to %s is on link %d, want the container's veth %d", dst, got, local)
	}

	// Once the container is gone, the overlay takes the address.
	must(t, node, func() error { return detachLinks(links) })
	if err := o.Sync(peers, []Route{{Dst: dst, NodeID: "n2"}}); err != nil {
		t.Fatal(err)
	}
	if got := routeDev(); got != linkIndex(t, h, o.Name()) {
		t.Fatalf("route to %s is on link %d, want the overlay", dst, got)
	}
	// And a container that comes here takes it back.
	must(t, node, func() (err error) {
		links, err = attachLinks(ctr, "ctr", []Interface{{NetworkID: "app", Address: netip.PrefixFrom(dst, 24)}}, o.MTU())
		return err
	})
	if got := routeDev(); got != linkIndex(t, h, links[0].Host) {
		t.Fatalf("route to %s is on link %d, want the container's veth", dst, got)
	}
	if err := o.Sync(peers, nil); err != nil {
		t.Fatal(err)
	}
	if got := routeDev(); got != linkIndex(t, h, links[0].Host) {
		t.Fatalf("the overlay removed the container's route to %s", dst)
	}
}

func TestTwoOverlaysInOneNamespace(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	standalone(t, node, netip.MustParsePrefix("10.251.2.1/24"))
	addr := netip.MustParseAddr("10.251.2.1")
	a := OverlayConfig{Node: "agent-a", Subnet: netip.MustParsePrefix("10.252.10.0/24"), Address: addr}
	b := OverlayConfig{Node: "agent-b", Subnet: netip.MustParsePrefix("10.252.11.0/24"), Address: addr}
	oa, ob := newOverlayIn(t, node, a), newOverlayIn(t, node, b)
	if oa.Name() == ob.Name() {
		t.Fatalf("both overlays are named %s", oa.Name())
	}
	h := handleIn(t, node)
	for _, c := range []struct {
		o   *Overlay
		cfg OverlayConfig
	}{{oa, a}, {ob, b}} {
		l, err := h.LinkByName(c.o.Name())
		if err != nil {
			t.Fatal(err)
		}
		v, ok := l.(*netlink.Vxlan)
		if !ok {
			t.Fatalf("%s is a %s, want vxlan", c.o.Name(), l.Type())
		}
		if v.VxlanId != overlayVNI(c.cfg.Subnet) || v.Port != DefaultVXLANPort || v.Learning || v.Flags&net.FlagUp == 0 ||
			v.HardwareAddr.String() != overlayMAC(c.o.Address()).String() || !v.SrcAddr.Equal(addr.AsSlice()) {
			t.Errorf("%s: VNI %d port %d learning %v flags %v MAC %s local %s; want VNI %d port %d, no learning, up, MAC %s, local %s",
				c.o.Name(), v.VxlanId, v.Port, v.Learning, v.Flags, v.HardwareAddr, v.SrcAddr,
				overlayVNI(c.cfg.Subnet), DefaultVXLANPort, overlayMAC(c.o.Address()), addr)
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V4)
		if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != c.o.Address().String()+"/32" {
			t.Errorf("%s addresses = %v (%v), want %s/32", c.o.Name(), addrs, err, c.o.Address())
		}
	}
	// Each sees the other at its own address: skipped, the shared routing
	// table reaches the other's containers.
	peers := []Peer{{NodeID: "a", Address: addr, Subnet: a.Subnet}, {NodeID: "b", Address: addr, Subnet: b.Subnet}}
	for _, o := range []*Overlay{oa, ob} {
		if err := o.Sync(peers, []Route{{Dst: netip.MustParseAddr("10.253.1.2"), NodeID: "a"}, {Dst: netip.MustParseAddr("10.253.1.3"), NodeID: "b"}}); err != nil {
			t.Fatal(err)
		}
		expectOverlay(t, h, o.Name(), overlayState{})
	}
}

func TestOverlayAdoptsOrRecreates(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	standalone(t, node, netip.MustParsePrefix("10.251.3.1/24"))
	cfg := OverlayConfig{Node: "n", Subnet: netip.MustParsePrefix("10.252.20.0/24"), Address: netip.MustParseAddr("10.251.3.1")}
	h := handleIn(t, node)
	o := newOverlayIn(t, node, cfg)
	first := linkIndex(t, h, o.Name())
	o.Close()

	o = newOverlayIn(t, node, cfg)
	if got := linkIndex(t, h, o.Name()); got != first {
		t.Errorf("same settings: index %d, want %d (kept)", got, first)
	}
	o.Close()

	cfg.Port = 4790
	o = newOverlayIn(t, node, cfg)
	l, err := h.LinkByName(o.Name())
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Index == first || l.(*netlink.Vxlan).Port != 4790 {
		t.Errorf("new port: index %d port %d, want a new device on 4790", l.Attrs().Index, l.(*netlink.Vxlan).Port)
	}
	if err := o.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName(o.Name()); err == nil {
		t.Error("the device is still there after Destroy")
	}
	if err := o.Sync(nil, nil); err == nil {
		t.Error("Sync after Destroy succeeded")
	}
}

func TestOverlayOnLoopbackAddress(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	o := newOverlayIn(t, node, OverlayConfig{Node: "n", Subnet: netip.MustParsePrefix("10.252.30.0/24"), Address: netip.MustParseAddr("127.0.0.1")})
	if o.MTU() != defaultUnderlayMTU-vxlanOverhead {
		t.Errorf("MTU on loopback = %d, want %d", o.MTU(), defaultUnderlayMTU-vxlanOverhead)
	}
}

func TestOverlayDerivedValues(t *testing.T) {
	s := netip.MustParsePrefix("10.210.3.0/24")
	if got := overlayAddr(s); got != netip.MustParseAddr("10.210.3.1") {
		t.Errorf("overlayAddr = %s", got)
	}
	if got := overlayVNI(s); got != 0x0ad203 {
		t.Errorf("overlayVNI = %#x, want 0xad203", got)
	}
	if got := overlayMAC(overlayAddr(s)).String(); got != "0a:58:0a:d2:03:01" {
		t.Errorf("overlayMAC = %s", got)
	}
	if n := overlayName("node-1"); len(n) != 10 || n[:2] != "bx" || n == overlayName("node-2") {
		t.Errorf("overlayName = %q", n)
	}
}

func TestPeersAndRoutes(t *testing.T) {
	snap := &netmap.Snapshot{
		Nodes: map[string]*berthv1.NetworkNode{
			"self": {Id: "self", Address: "192.0.2.1", Subnet: "10.210.1.0/24"},
			"n2":   {Id: "n2", Address: "192.0.2.2", Subnet: "10.210.2.0/24"},
			"bad":  {Id: "bad", Address: "nowhere", Subnet: "10.210.3.0/24"},
		},
		Tasks: map[string]*berthv1.NetworkTask{
			"t1": {Id: "t1", NodeId: "self", Networks: []*berthv1.TaskNetwork{{Address: "10.128.0.2/24"}}},
			"t2": {Id: "t2", NodeId: "n2", Networks: []*berthv1.TaskNetwork{{Address: "10.128.0.3/24"}, {Address: "10.128.1.3/24"}}},
			"t3": {Id: "t3", Networks: []*berthv1.TaskNetwork{{Address: "10.128.0.4/24"}}},
		},
	}
	peers, routes := PeersAndRoutes(snap, "self")
	wantPeers := []Peer{{NodeID: "n2", Address: netip.MustParseAddr("192.0.2.2"), Subnet: netip.MustParsePrefix("10.210.2.0/24")}}
	if !slices.Equal(peers, wantPeers) {
		t.Errorf("peers = %v, want %v", peers, wantPeers)
	}
	slices.SortFunc(routes, func(a, b Route) int { return a.Dst.Compare(b.Dst) })
	wantRoutes := []Route{{Dst: netip.MustParseAddr("10.128.0.3"), NodeID: "n2"}, {Dst: netip.MustParseAddr("10.128.1.3"), NodeID: "n2"}}
	if !slices.Equal(routes, wantRoutes) {
		t.Errorf("routes = %v, want %v", routes, wantRoutes)
	}
}

// BenchmarkOverlaySync measures a Sync of a 10-node, 10,000-route map:
// unchanged (a pass over the map, no netlink call), and with one route
// coming or going (one netlink call more).
func BenchmarkOverlaySync(b *testing.B) {
	requireRoot(b)
	node := newNetNS(b, "node")
	standalone(b, node, netip.MustParsePrefix("10.251.1.1/24"))
	o := newOverlayIn(b, node, OverlayConfig{Node: "self", Subnet: netip.MustParsePrefix("10.252.0.0/24"), Address: netip.MustParseAddr("10.251.1.1")})
	var peers []Peer
	var routes []Route
	for n := range 10 {
		id := "n" + strconv.Itoa(n)
		peers = append(peers, Peer{NodeID: id, Address: netip.AddrFrom4([4]byte{10, 251, 1, byte(n + 2)}), Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 252, byte(n + 1), 0}), 24)})
		for i := range 1000 {
			routes = append(routes, Route{Dst: netip.AddrFrom4([4]byte{10, 128 + byte(n), byte(i >> 8), byte(i)}), NodeID: id})
		}
	}
	if err := o.Sync(peers, routes); err != nil {
		b.Fatal(err)
	}
	fewer := routes[:len(routes)-1]
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			if err := o.Sync(peers, routes); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-route", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			rs := routes
			if i%2 == 0 {
				rs = fewer
			}
			if err := o.Sync(peers, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
