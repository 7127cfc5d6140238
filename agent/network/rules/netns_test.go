package rules

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A minimal lab for the real tests: a "node" network namespace and
// "container" namespaces joined to it by veth pairs set up the way the
// agent's datapath does (container A/32 with routes via 169.254.1.1
// onlink; host side 169.254.1.1/32 scope link and a route to A/32), plus
// an "outside" namespace behind a plain link for traffic that leaves the
// cluster. Namespaces live only as long as the test holds their fds: the
// kernel removes them, and every link in them, when the test ends.

// gateway is the address of every container's host-side veth.
var gateway = netip.MustParseAddr("169.254.1.1")

type netNS struct {
	fd int
	h  *netlink.Handle
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nftables")
	}
}

// newNetNS makes an empty network namespace with loopback up.
func newNetNS(t testing.TB) *netNS {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread changes namespace and stays locked: the runtime
		// throws it away when the goroutine ends.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("unshare: %w", err)}
			return
		}
		fd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		done <- result{fd: fd, err: err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("new netns: %v", r.err)
	}
	ns := &netNS{fd: r.fd}
	t.Cleanup(func() { unix.Close(ns.fd) })
	h, err := netlink.NewHandleAt(netns.NsHandle(r.fd))
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	ns.h = h
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatalf("loopback up: %v", err)
	}
	return ns
}

// do runs fn on a thread inside ns; sockets fn opens stay in ns.
func (ns *netNS) do(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is thrown away
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

func (ns *netNS) sysctl(t testing.TB, key, value string) {
	t.Helper()
	err := ns.do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("sysctl %s=%s: %v", key, value, err)
	}
}

func (ns *netNS) addAddr(t testing.TB, link netlink.Link, p netip.Prefix, scope netlink.Scope) {
	t.Helper()
	a := &netlink.Addr{IPNet: ipNet(p), Scope: int(scope)}
	if err := ns.h.AddrAdd(link, a); err != nil {
		t.Fatalf("address %s on %s: %v", p, link.Attrs().Name, err)
	}
}

func (ns *netNS) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := ns.h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func (ns *netNS) up(t testing.TB, l netlink.Link) {
	t.Helper()
	if err := ns.h.LinkSetUp(l); err != nil {
		t.Fatalf("link %s up: %v", l.Attrs().Name, err)
	}
}

// waitUp polls until the link has carrier: packets sent before that are
// dropped and a SYN would wait a second for its retransmission.
func (ns *netNS) waitUp(t testing.TB, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		l, err := ns.h.LinkByName(name)
		if err == nil && l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("link %s not up after 5s (%v)", name, err)
		}
		<-tick.C
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

// lab is one node with its containers.
type lab struct {
	node    *netNS
	outside *netNS
	// table is printed in failure messages.
	table *Table
}

// Addresses of the lab: the node's own on loopback (its overlay
// address, in the node range), and the link to the outside.
var (
	nodeRange   = netip.MustParsePrefix("10.210.0.0/16")
	nodeAddr    = netip.MustParseAddr("10.210.3.1")
	uplinkAddr  = netip.MustParseAddr("198.51.100.1")
	outsideAddr = netip.MustParseAddr("198.51.100.2")
)

func newLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{node: newNetNS(t), outside: newNetNS(t)}
	l.node.sysctl(t, "net.ipv4.ip_forward", "1")
	// The kernel here has no dummy links: the node's own address sits on
	// loopback, which makes it just as local.
	l.node.addAddr(t, l.node.link(t, "lo"), netip.PrefixFrom(nodeAddr, 32), netlink.SCOPE_UNIVERSE)

	up := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(l.outside.fd)}
	if err := l.node.h.LinkAdd(up); err != nil {
		t.Fatalf("uplink: %v", err)
	}
	ul := l.node.link(t, "uplink")
	l.node.addAddr(t, ul, netip.PrefixFrom(uplinkAddr, 24), netlink.SCOPE_UNIVERSE)
	l.node.up(t, ul)
	ol := l.outside.link(t, "eth0")
	l.outside.addAddr(t, ol, netip.PrefixFrom(outsideAddr, 24), netlink.SCOPE_UNIVERSE)
	l.outside.up(t, ol)
	l.node.waitUp(t, "uplink")
	l.outside.waitUp(t, "eth0")
	return l
}

// container is one container's namespace and address.
type container struct {
	*netNS
	name string
	addr netip.Addr
}

// addContainer makes a container with address addr on a network with
// subnet, and a default route through the node when defaultRoute is set.
func (l *lab) addContainer(t testing.TB, name string, addr netip.Addr, subnet netip.Prefix, defaultRoute bool) *container {
	t.Helper()
	c := &container{netNS: newNetNS(t), name: name, addr: addr}
	sum := sha256.Sum256([]byte(name + "/0"))
	host := "bv" + hex.EncodeToString(sum[:])[:12]
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: "eth0", PeerNamespace: netlink.NsFd(c.fd)}
	if err := l.node.h.LinkAdd(v); err != nil {
		t.Fatalf("veth for %s: %v", name, err)
	}
	hl := l.node.link(t, host)
	l.node.addAddr(t, hl, netip.PrefixFrom(gateway, 32), netlink.SCOPE_LINK)
	l.node.up(t, hl)
	l.node.sysctl(t, "net.ipv4.conf."+host+".rp_filter", "1")
	l.node.sysctl(t, "net.ipv4.conf."+host+".route_localnet", "1")
	if err := l.node.h.RouteReplace(&netlink.Route{
		LinkIndex: hl.Attrs().Index, Dst: ipNet(netip.PrefixFrom(addr, 32)), Scope: netlink.SCOPE_LINK, Src: gateway.AsSlice(),
	}); err != nil {
		t.Fatalf("route to %s: %v", name, err)
	}

	cl := c.link(t, "eth0")
	c.addAddr(t, cl, netip.PrefixFrom(addr, 32), netlink.SCOPE_UNIVERSE)
	c.up(t, cl)
	if err := c.h.NeighSet(&netlink.Neigh{
		LinkIndex: cl.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: gateway.AsSlice(), HardwareAddr: hl.Attrs().HardwareAddr,
	}); err != nil {
		t.Fatalf("neighbor in %s: %v", name, err)
	}
	routes := []*netlink.Route{{Dst: ipNet(subnet)}}
	if defaultRoute {
		routes = append(routes, &netlink.Route{Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0"))})
	}
	for _, r := range routes {
		r.LinkIndex, r.Gw, r.Src, r.Flags = cl.Attrs().Index, gateway.AsSlice(), addr.AsSlice(), int(netlink.FLAG_ONLINK)
		if err := c.h.RouteAdd(r); err != nil {
			t.Fatalf("route %s in %s: %v", r.Dst, name, err)
		}
	}
	// The gateway itself is on the link, as the agent's datapath says.
	if err := c.h.RouteAdd(&netlink.Route{LinkIndex: cl.Attrs().Index, Dst: ipNet(netip.PrefixFrom(gateway, 32)), Scope: netlink.SCOPE_LINK, Src: addr.AsSlice()}); err != nil {
		t.Fatalf("route to the gateway in %s: %v", name, err)
	}
	l.node.waitUp(t, host)
	c.waitUp(t, "eth0")
	return c
}

// serve answers every TCP connection to addr in ns with name and a
// newline, until the test ends.
func serve(t testing.TB, ns *netNS, addr, name string) {
	t.Helper()
	var ln net.Listener
	err := ns.do(func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s for %s: %v", addr, name, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(name + "\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// Dial timeouts. A connection that should work gets plenty of time; one
// that the rules drop shows only as a connect that never completes, so
// that one waits less (a connection the rules let through completes in
// well under a millisecond here).
const (
	dialOK      = 5 * time.Second
	dialDropped = 700 * time.Millisecond
)

// ask connects from ns to addr n times and returns the names that
// answered, in order; it stops at the first error.
func ask(ns *netNS, addr string, n int, timeout time.Duration) ([]string, error) {
	var names []string
	err := ns.do(func() error {
		for range n {
			c, err := net.DialTimeout("tcp4", addr, timeout)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(dialOK))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				return fmt.Errorf("read from %s: %w", addr, err)
			}
			names = append(names, strings.TrimSpace(line))
		}
		return nil
	})
	return names, err
}

// mustReach asks once and fails unless want answers.
func (l *lab) mustReach(t testing.TB, from *netNS, addr, want string) {
	t.Helper()
	got, err := ask(from, addr, 1, dialOK)
	if err != nil || got[0] != want {
		t.Fatalf("connect to %s: got %v, %v; want an answer from %s\n%s", addr, got, err, want, l.ruleset())
	}
}

// mustBeDropped fails unless a connection to addr times out: the table
// dropped it (a refusal or "unreachable" would come from elsewhere).
func (l *lab) mustBeDropped(t testing.TB, from *netNS, addr string) {
	t.Helper()
	got, err := ask(from, addr, 1, dialDropped)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connect to %s: answers %v, error %v; want it dropped (a connect timeout)\n%s", addr, got, err, l.ruleset())
	}
}

// ruleset prints the node's table for a failure message when the nft
// binary is installed; the tests do not need it.
func (l *lab) ruleset() string {
	if l.table == nil {
		return ""
	}
	path, err := exec.LookPath("nft")
	if err != nil {
		return "(no nft binary to print table " + l.table.Name() + ")"
	}
	var out []byte
	// A child forked from a thread inside the namespace starts there.
	err = l.node.do(func() (err error) {
		out, err = exec.Command(path, "list", "table", "ip", l.table.Name()).CombinedOutput()
		return err
	})
	return string(out) + errString(err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func isRefused(err error) bool { return errors.Is(err, unix.ECONNREFUSED) }
