package network

import (
	"fmt"
	"github.com/berthproject/berth/agent/network/nspath"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The datapath tests build "nodes" and "containers" as network namespaces
// of their own, so every address they use is private to the test and
// nothing touches the machine's own network.

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and links")
	}
}

// newNetNS makes a named network namespace with loopback up, removed when
// the test ends; every link inside goes with it.
func newNetNS(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := nspath.Create(path); err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := nspath.Remove(path); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := nspath.LoopbackUp(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// must runs fn in the namespace at path and fails the test on error.
func must(t testing.TB, path string, fn func() error) {
	t.Helper()
	if err := nspath.Do(path, fn); err != nil {
		t.Fatal(err)
	}
}

// handleIn returns a netlink handle working in the namespace at path.
func handleIn(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// serveIn listens on addr inside the namespace at path and greets every
// connection with greeting, until the test ends.
func serveIn(t testing.TB, path, addr, greeting string) {
	t.Helper()
	var l net.Listener
	must(t, path, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, greeting)
			c.Close()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

// greetFrom connects from the namespace at path to addr and returns what
// the server says.
func greetFrom(path, addr string) (string, error) {
	var got string
	err := nspath.Do(path, func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

// expectGreeting polls until a connection from path to addr is greeted
// with want.
func expectGreeting(t testing.TB, path, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := greetFrom(path, addr)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to %s: got %q, err %v; want %q", addr, got, err, want)
		}
	}
}

// expectNoConnection checks that a connection from path to addr fails.
func expectNoConnection(t testing.TB, path, addr string) {
	t.Helper()
	if got, err := greetFrom(path, addr); err == nil {
		t.Fatalf("connect to %s from %s: got %q, want no route", addr, filepath.Base(path), got)
	}
}

func routesIn(t testing.TB, h *netlink.Handle, link string) []netlink.Route {
	t.Helper()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatalf("find %s: %v", link, err)
	}
	rs, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func hasDefaultRoute(rs []netlink.Route) bool {
	return slices.ContainsFunc(rs, func(r netlink.Route) bool {
		return r.Dst == nil || r.Dst.String() == "0.0.0.0/0"
	})
}

func TestLinksOnOneNode(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	c1, c2, c3 := newNetNS(t, "c1"), newNetNS(t, "c2"), newNetNS(t, "c3")
	must(t, node, hostSetup)

	app := func(a string) Interface {
		return Interface{NetworkID: "app", Address: netip.MustParsePrefix(a)}
	}
	internal := func(a string) Interface {
		return Interface{NetworkID: "backend", Address: netip.MustParsePrefix(a), Internal: true}
	}
	attach := func(path, id string, ifaces ...Interface) []Link {
		t.Helper()
		var links []Link
		must(t, node, func() (err error) {
			links, err = attachLinks(path, id, ifaces, 1450)
			return err
		})
		t.Cleanup(func() {
			if err := nspath.Do(node, func() error { return detachLinks(links) }); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		return links
	}
	l1 := attach(c1, "c1", app("10.252.7.2/24"))
	// c2's first network is internal: its default route goes through the
	// second.
	l2 := attach(c2, "c2", internal("10.252.8.2/24"), app("10.252.7.3/24"))
	attach(c3, "c3", internal("10.252.8.3/24"))

	if want := (Link{Host: hostVethName("c1", 0), Container: "eth0", Address: netip.MustParsePrefix("10.252.7.2/24"), NetworkID: "app"}); len(l1) != 1 || l1[0] != want {
		t.Fatalf("links of c1 = %+v, want [%+v]", l1, want)
	}
	if len(l2) != 2 || l2[0].Container != "eth0" || l2[1].Container != "eth1" || l2[1].Host != hostVethName("c2", 1) {
		t.Fatalf("links of c2 = %+v, want eth0 and eth1", l2)
	}

	h2, h3 := handleIn(t, c2), handleIn(t, c3)
	if rs := routesIn(t, h2, "eth0"); hasDefaultRoute(rs) {
		t.Errorf("c2 has a default route on its internal network: %v", rs)
	}
	if rs := routesIn(t, h2, "eth1"); !hasDefaultRoute(rs) {
		t.Errorf("c2 has no default route on eth1: %v", rs)
	}
	if rs := routesIn(t, h3, "eth0"); hasDefaultRoute(rs) {
		t.Errorf("c3, on an internal network only, has a default route: %v", rs)
	}
	eth1, err := h2.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	if eth1.Attrs().MTU != 1450 {
		t.Errorf("eth1 MTU = %d, want 1450", eth1.Attrs().MTU)
	}

	serveIn(t, c2, "10.252.7.3:8080", "c2 on app")
	serveIn(t, c2, "10.252.8.2:8080", "c2 on backend")
	serveIn(t, c1, "10.252.7.2:8080", "c1")
	expectGreeting(t, c1, "10.252.7.3:8080", "c2 on app")
	expectGreeting(t, c2, "10.252.7.2:8080", "c1")
	expectGreeting(t, c3, "10.252.8.2:8080", "c2 on backend")
	// c3 has no route out of its internal network.
	expectNoConnection(t, c3, "10.252.7.2:8080")

	// The node (from 169.254.1.1, as masqueraded traffic comes) reaches
	// each address, also one that is not on the default route's interface
	// and one of a container on an internal network only: replies leave
	// by the interface of their source address.
	serveIn(t, c3, "10.252.8.3:8080", "c3")
	expectGreeting(t, node, "10.252.7.3:8080", "c2 on app")
	expectGreeting(t, node, "10.252.8.2:8080", "c2 on backend")
	expectGreeting(t, node, "10.252.8.3:8080", "c3")

	// The greetings went through c1's eth0: its counters moved.
	if tr, err := trafficIn(c1); err != nil || tr.RxBytes == 0 || tr.TxBytes == 0 {
		t.Errorf("traffic of c1 = %+v, %v; want bytes received and sent", tr, err)
	}
	// Loopback is not counted.
	c4 := newNetNS(t, "c4")
	serveIn(t, c4, "127.0.0.1:8080", "c4")
	expectGreeting(t, c4, "127.0.0.1:8080", "c4")
	if tr, err := trafficIn(c4); err != nil || tr != (Traffic{}) {
		t.Errorf("traffic of a namespace that only used loopback = %+v, %v; want none", tr, err)
	}
}

func TestDetachLinks(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	ctr := newNetNS(t, "ctr")
	must(t, node, hostSetup)
	ifaces := []Interface{{NetworkID: "app", Address: netip.MustParsePrefix("10.252.9.2/24")}}
	var links []Link
	attach := func() {
		t.Helper()
		must(t, node, func() (err error) {
			links, err = attachLinks(ctr, "ctr", ifaces, 1500)
			return err
		})
	}
	attach()
	// A second attach with the same names finds the veth of the first, as
	// after a crash before the record was written, and starts afresh.
	attach()
	hn, hc := handleIn(t, node), handleIn(t, ctr)
	route := func() []netlink.Route {
		rs, err := hn.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(netip.MustParsePrefix("10.252.9.2/32"))}, netlink.RT_FILTER_DST)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if rs := route(); len(rs) != 1 || !rs[0].Src.Equal(gatewayIP.AsSlice()) || rs[0].Scope != netlink.SCOPE_LINK {
		t.Fatalf("node routes to the container = %v, want one, scope link, src %s", rs, gatewayIP)
	}

	for range 2 { // the second time, nothing is left to delete
		must(t, node, func() error { return detachLinks(links) })
	}
	if _, err := hn.LinkByName(links[0].Host); err == nil {
		t.Errorf("veth %s is still on the node", links[0].Host)
	}
	if _, err := hc.LinkByName("eth0"); err == nil {
		t.Error("eth0 is still in the container")
	}
	if rs := route(); len(rs) != 0 {
		t.Errorf("routes to the container after detach: %v", rs)
	}
}

func TestAttachLinksRollsBack(t *testing.T) {
	requireRoot(t)
	node := newNetNS(t, "node")
	ctr := newNetNS(t, "ctr")
	// The second interface fails (its container side name is taken), so
	// the first must be undone.
	hc := handleIn(t, ctr)
	if err := hc.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1"}, PeerName: "other"}); err != nil {
		t.Fatal(err)
	}
	ifaces := []Interface{
		{NetworkID: "a", Address: netip.MustParsePrefix("10.252.9.2/24")},
		{NetworkID: "b", Address: netip.MustParsePrefix("10.252.10.2/24")},
	}
	err := nspath.Do(node, func() error {
		links, err := attachLinks(ctr, "ctr", ifaces, 1500)
		if err == nil {
			return fmt.Errorf("attach made %v, want an error", links)
		}
		if !strings.Contains(err.Error(), "network b") {
			return fmt.Errorf("error %q does not name the network", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hn := handleIn(t, node)
	for i := range ifaces {
		if _, err := hn.LinkByName(hostVethName("ctr", i)); err == nil {
			t.Errorf("veth %s left on the node", hostVethName("ctr", i))
		}
	}
	if _, err := hc.LinkByName("eth0"); err == nil {
		t.Error("eth0 left in the container")
	}
}

func TestHostVethName(t *testing.T) {
	a, b := hostVethName("task-1", 0), hostVethName("task-1", 1)
	if a == b || len(a) != 14 || len(a) > unix.IFNAMSIZ-1 || !strings.HasPrefix(a, "bv") {
		t.Errorf("hostVethName = %q, %q; want distinct bv+12 hex names", a, b)
	}
	if hostVethName("task-1", 0) != a {
		t.Error("hostVethName is not stable: a restarted agent would not find its veths")
	}
}
