package network

import (
	"context"
	"errors"
	"fmt"
	"github.com/berthproject/berth/agent/network/nspath"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	miekg "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/agent/network/dns"
	"github.com/berthproject/berth/agent/network/rules"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// The Node tests run a node's whole network inside a "node" network
// namespace of the test's own: its overlay device, rule table and
// containers' links are private to the test. Every call to the Node is
// made from a thread that has entered that namespace (and is thrown away
// afterwards), as an agent's calls come from its own namespace; the
// containers' namespaces are bind-mounted under a temporary directory.

// nodeAddress is every test node's own address, on its loopback.
const nodeAddress = "10.212.0.1"

// subnetSeq numbers the test nodes' container subnets, 10.211.N.0/24.
var subnetSeq atomic.Int32

// testNode is a Node in a network namespace of its own.
type testNode struct {
	t   *testing.T
	ns  string // the node's network namespace
	cfg Config
	n   *Node // nil after close
}

// newTestNode starts a Node in a new namespace. Whatever the test leaves,
// the node is closed and removed when the test ends.
func newTestNode(t *testing.T) *testNode {
	t.Helper()
	requireRoot(t)
	ns := newNetNS(t, "node")
	h := handleIn(t, ns)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(nodeAddress + "/32"))}); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tn := &testNode{t: t, ns: ns, cfg: Config{
		Name:           "node-" + t.Name(),
		NodeID:         "id-" + t.Name(),
		DataDir:        t.TempDir(),
		Subnet:         fmt.Sprintf("10.211.%d.0/24", subnetSeq.Add(1)),
		ContainerRange: "10.211.0.0/16",
		Address:        nodeAddress,
		NetNSDir:       t.TempDir(),
		ResolvConf:     resolv,
	}}
	// Registered after the directories and the namespace, so it runs
	// before they are removed.
	t.Cleanup(func() {
		err := nspath.Do(tn.ns, func() error {
			var errs []error
			if tn.n != nil {
				errs = append(errs, tn.n.Close())
			}
			return errors.Join(append(errs, Remove(tn.cfg.Name, tn.cfg.DataDir, tn.cfg.NetNSDir))...)
		})
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		tn.expectNodeGone()
	})
	tn.start()
	return tn
}

// in returns tn reporting to t, a subtest's.
func (tn *testNode) in(t *testing.T) *testNode {
	c := *tn
	c.t = t
	return &c
}

// start makes the Node, as an agent does when it starts.
func (tn *testNode) start() {
	tn.t.Helper()
	must(tn.t, tn.ns, func() (err error) {
		tn.n, err = New(tn.cfg)
		return err
	})
}

// stop closes the Node, as an agent does when it stops, and returns it.
func (tn *testNode) stop() *Node {
	tn.t.Helper()
	n := tn.n
	must(tn.t, tn.ns, n.Close)
	tn.n = nil
	return n
}

// do runs fn with the Node in the node's namespace.
func (tn *testNode) do(fn func(n *Node) error) error {
	n := tn.n
	return nspath.Do(tn.ns, func() error { return fn(n) })
}

func (tn *testNode) attach(spec AttachSpec) (a Attachment, err error) {
	err = tn.do(func(n *Node) (err error) {
		a, err = n.Attach(context.Background(), spec)
		return err
	})
	return a, err
}

func (tn *testNode) mustAttach(spec AttachSpec) Attachment {
	tn.t.Helper()
	a, err := tn.attach(spec)
	if err != nil {
		tn.t.Fatalf("Attach(%s): %v", spec.ID, err)
	}
	return a
}

func (tn *testNode) detach(id string) error {
	return tn.do(func(n *Node) error { return n.Detach(context.Background(), id) })
}

func (tn *testNode) mustDetach(id string) {
	tn.t.Helper()
	if err := tn.detach(id); err != nil {
		tn.t.Fatalf("Detach(%s): %v", id, err)
	}
}

func (tn *testNode) expectAttachments(want ...string) {
	tn.t.Helper()
	ids, err := records{dir: tn.recordDir()}.ids()
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, want) {
		tn.t.Errorf("attachment records = %v, %v; want %v", ids, err, want)
	}
	if tn.n == nil {
		return
	}
	if ids, err := tn.n.Attachments(); err != nil || !slices.Equal(ids, want) {
		tn.t.Errorf("Attachments() = %v, %v; want %v", ids, err, want)
	}
}

func (tn *testNode) recordDir() string {
	return filepath.Join(tn.cfg.DataDir, "network", "attachments")
}
func (tn *testNode) filesDir() string { return filepath.Join(tn.cfg.DataDir, "network", "files") }

// netnsPath is where the namespace of container id is mounted.
func (tn *testNode) netnsPath(id string) string {
	return filepath.Join(tn.cfg.NetNSDir, netnsPrefix(tn.cfg.Name)+id)
}

// handle returns a netlink handle in the node's namespace; the caller
// closes it.
func (tn *testNode) handle() (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(tn.ns)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
}

// links returns the names of the node's links that start with prefix.
func (tn *testNode) links(prefix string) []string {
	tn.t.Helper()
	h, err := tn.handle()
	if err != nil {
		tn.t.Fatal(err)
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		tn.t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

// tables returns the names of the nftables tables of the ip family in the
// node's namespace.
func (tn *testNode) tables() []string {
	tn.t.Helper()
	fd, err := unix.Open(tn.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tn.t.Fatal(err)
	}
	defer unix.Close(fd)
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		tn.t.Fatal(err)
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		tn.t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	return names
}

// expectNodeUp checks that the node's overlay device and rule table exist.
func (tn *testNode) expectNodeUp() {
	tn.t.Helper()
	if dev := overlayName(tn.cfg.Name); !slices.Contains(tn.links("bx"), dev) {
		tn.t.Errorf("overlay device %s is missing", dev)
	}
	if table := rules.New(tn.cfg.Name).Name(); !slices.Contains(tn.tables(), table) {
		tn.t.Errorf("nftables table %s is missing", table)
	}
}

// expectNodeGone checks that nothing of the node is left: no overlay
// device, rule table, container or file.
func (tn *testNode) expectNodeGone() {
	tn.t.Helper()
	if devs := tn.links("bx"); len(devs) > 0 {
		tn.t.Errorf("overlay devices left: %v", devs)
	}
	if table := rules.New(tn.cfg.Name).Name(); slices.Contains(tn.tables(), table) {
		tn.t.Errorf("nftables table %s left", table)
	}
	tn.expectNoContainers()
}

// expectNoContainers checks that no container namespace, veth, record or
// file is left.
func (tn *testNode) expectNoContainers() {
	tn.t.Helper()
	if entries, _ := os.ReadDir(tn.cfg.NetNSDir); len(entries) > 0 {
		tn.t.Errorf("network namespaces left in %s: %v", tn.cfg.NetNSDir, entries)
	}
	if veths := tn.links("bv"); len(veths) > 0 {
		tn.t.Errorf("veths left on the node: %v", veths)
	}
	if entries, _ := os.ReadDir(tn.recordDir()); len(entries) > 0 {
		tn.t.Errorf("attachment records left: %v", entries)
	}
	if entries, _ := os.ReadDir(tn.filesDir()); len(entries) > 0 {
		tn.t.Errorf("resolver files left: %v", entries)
	}
}

// expectDetached checks that nothing of container id, attached as a with
// ifaces interfaces, is left.
func (tn *testNode) expectDetached(id string, a Attachment, ifaces int) {
	tn.t.Helper()
	gone := func(what, path string) {
		tn.t.Helper()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			tn.t.Errorf("%s: %s %s is left (stat: %v)", id, what, path, err)
		}
	}
	gone("netns", a.NetNSPath)
	for _, f := range a.Files {
		gone("file", f)
	}
	gone("file directory", filepath.Join(tn.filesDir(), id))
	gone("record", records{dir: tn.recordDir()}.path(id))
	veths := tn.links("bv")
	for i := range ifaces {
		if slices.Contains(veths, hostVethName(id, i)) {
			tn.t.Errorf("%s: veth %s is left", id, hostVethName(id, i))
		}
	}
}

// spec is container id with one interface on network n1 at addr.
func spec(id, addr string, ports ...Port) AttachSpec {
	return AttachSpec{
		ID:         id,
		Interfaces: []Interface{{NetworkID: "n1", Address: netip.MustParsePrefix(addr)}},
		Ports:      ports,
		Hostname:   id,
		Search:     []string{"shop"},
	}
}

// expectGreetingNow checks that one connection from path to addr is
// greeted with want: for state that Node calls change before they return.
func expectGreetingNow(t *testing.T, path, addr, want string) {
	t.Helper()
	if got, err := greetFrom(path, addr); err != nil || got != want {
		t.Errorf("connect to %s: got %q, err %v; want %q", addr, got, err, want)
	}
}

// expectRefused polls until a connection from path to addr is refused.
func expectRefused(t *testing.T, path, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := greetFrom(path, addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to %s: got %q, err %v; want connection refused", addr, got, err)
		}
	}
}

func TestNodeAttachDetach(t *testing.T) {
	tn := newTestNode(t)
	web := spec("web-1", "10.128.0.5/24", Port{Target: 80, Published: 8080})
	web.Options = []string{"timeout:1"}
	web.ExtraHosts = []*berthv1.ExtraHost{{Hostname: "db", Address: "10.1.2.3"}}
	a := tn.mustAttach(web)

	if want := tn.netnsPath("web-1"); a.NetNSPath != want {
		t.Errorf("NetNSPath = %s, want %s", a.NetNSPath, want)
	}
	if ok, err := nspath.IsNetNS(a.NetNSPath); !ok || err != nil {
		t.Fatalf("netns %s is not mounted (err %v)", a.NetNSPath, err)
	}
	if a.IP != "10.128.0.5" {
		t.Errorf("IP = %q, want 10.128.0.5", a.IP)
	}
	wantFiles := map[string]string{
		"/etc/resolv.conf": "nameserver 127.0.0.11\nsearch shop\noptions ndots:0 timeout:1\n",
		"/etc/hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.128.0.5\tweb-1\n10.1.2.3\tdb\n",
		"/etc/hostname":    "web-1\n",
	}
	if len(a.Files) != len(wantFiles) {
		t.Errorf("Files = %v, want %d files", a.Files, len(wantFiles))
	}
	for dst, want := range wantFiles {
		src, ok := a.Files[dst]
		if !ok {
			t.Errorf("Files has no %s", dst)
			continue
		}
		if !strings.HasPrefix(src, tn.filesDir()) {
			t.Errorf("%s is at %s, outside %s", dst, src, tn.filesDir())
		}
		if b, err := os.ReadFile(src); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", dst, b, err, want)
		}
	}
	hc := handleIn(t, a.NetNSPath)
	eth0, err := hc.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := hc.AddrList(eth0, netlink.FAMILY_V4); err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.128.0.5/32" {
		t.Errorf("eth0 addresses = %v, %v; want 10.128.0.5/32", addrs, err)
	}
	if eth0.Attrs().MTU != 1450 {
		t.Errorf("eth0 MTU = %d, want the overlay's 1450", eth0.Attrs().MTU)
	}
	if lo, err := hc.LinkByName("lo"); err != nil || lo.Attrs().Flags&unix.IFF_UP == 0 {
		t.Errorf("loopback in the container: %v, %v; want it up", lo, err)
	}

	serveIn(t, a.NetNSPath, ":80", "web-1")
	expectGreeting(t, tn.ns, "127.0.0.1:8080", "web-1")
	expectGreeting(t, tn.ns, nodeAddress+":8080", "web-1")

	b := tn.mustAttach(spec("web-2", "10.128.0.6/24"))
	expectGreeting(t, b.NetNSPath, "10.128.0.5:80", "web-1")
	tn.expectAttachments("web-1", "web-2")

	tn.mustDetach("web-1")
	// The published port is the node's own again.
	serveIn(t, tn.ns, ":8080", "the node")
	expectGreetingNow(t, tn.ns, "127.0.0.1:8080", "the node")
	expectGreetingNow(t, tn.ns, nodeAddress+":8080", "the node")
	tn.expectDetached("web-1", a, 1)
	tn.expectAttachments("web-2")

	tn.mustDetach("web-2")
	tn.expectDetached("web-2", b, 1)
	tn.expectAttachments()
	tn.expectNoContainers()
}

// TestNodeAttachWithoutNetworks attaches a container that joins no
// network: it has its loopback, its files and its DNS server only.
func TestNodeAttachWithoutNetworks(t *testing.T) {
	tn := newTestNode(t)
	id := "lonely-" + strings.Repeat("x", 70)
	a := tn.mustAttach(AttachSpec{ID: id})
	if a.IP != "" {
		t.Errorf("IP = %q, want none", a.IP)
	}
	// The host name defaults to the id, cut to a DNS label.
	host := id[:63]
	for dst, want := range map[string]string{
		"/etc/hostname": host + "\n",
		"/etc/hosts":    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	} {
		if b, err := os.ReadFile(a.Files[dst]); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", dst, b, err, want)
		}
	}
	ls, err := handleIn(t, a.NetNSPath).LinkList()
	if err != nil || len(ls) != 1 || ls[0].Attrs().Name != "lo" {
		t.Errorf("links in the container = %v, %v; want lo alone", ls, err)
	}
	// Its DNS server holds the address.
	err = nspath.Do(a.NetNSPath, func() error {
		c, err := net.ListenPacket("udp", dns.ListenAddr)
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("listen at %s in the container = %v, want the address in use by its DNS server", dns.ListenAddr, err)
	}
	tn.mustDetach(id)
	tn.expectDetached(id, a, 0)
	tn.expectNoContainers()
}

func TestNodeAttachIsIdempotent(t *testing.T) {
	tn := newTestNode(t)
	s := spec("web-1", "10.128.0.5/24", Port{Target: 80, Published: 8080})
	first := tn.mustAttach(s)
	// The same ports given otherwise are the same ports.
	again := s
	again.Ports = []Port{{Target: 80, Published: 8080, Protocol: "TCP"}}
	second := tn.mustAttach(again)
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second Attach = %+v, want %+v", second, first)
	}

	other := s
	other.Ports = []Port{{Target: 80, Published: 8081}}
	_, err := tn.attach(other)
	if err == nil || !strings.Contains(err.Error(), "8080") || !strings.Contains(err.Error(), "8081") {
		t.Errorf("Attach with other ports = %v, want an error naming ports 8080 and 8081", err)
	}
	// The attachment is untouched.
	serveIn(t, first.NetNSPath, ":80", "web-1")
	expectGreeting(t, tn.ns, "127.0.0.1:8080", "web-1")
	tn.expectAttachments("web-1")

	for range 2 {
		tn.mustDetach("web-1")
	}
	tn.expectDetached("web-1", first, 1)
	tn.expectNoContainers()
}

func TestNodeDetachUnknownID(t *testing.T) {
	tn := newTestNode(t)
	if err := tn.detach("never-attached"); err != nil {
		t.Fatalf("Detach of an unknown id = %v, want nil", err)
	}
	if err := tn.detach("../x"); err == nil {
		t.Error("Detach of an invalid id succeeded")
	}
}

// TestNodeDetachAfterRestart detaches with a new Node, as an agent does
// after a restart, including a container whose namespace vanished
// meanwhile (a reboot).
func TestNodeDetachAfterRestart(t *testing.T) {
	tn := newTestNode(t)
	kept := tn.mustAttach(spec("kept", "10.128.0.5/24", Port{Target: 80, Published: 8080}))
	lost := tn.mustAttach(spec("lost", "10.128.0.6/24", Port{Target: 80, Published: 8081}))
	serveIn(t, kept.NetNSPath, ":80", "kept")
	expectGreeting(t, tn.ns, "127.0.0.1:8080", "kept")

	old := tn.stop()
	err := nspath.Do(tn.ns, func() error {
		if _, err := old.Attach(context.Background(), spec("late", "10.128.0.7/24")); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("Attach after Close = %v, want ErrClosed", err)
		}
		if err := old.Detach(context.Background(), "kept"); !errors.Is(err, ErrClosed) {
			return fmt.Errorf("Detach after Close = %v, want ErrClosed", err)
		}
		return old.Close() // again: a no-op
	})
	if err != nil {
		t.Error(err)
	}
	if err := nspath.Remove(lost.NetNSPath); err != nil {
		t.Fatal(err)
	}

	tn.start()
	tn.expectAttachments("kept", "lost")
	// Its DNS server answers again.
	m := shopMap(tn, true)
	m.Tasks[0].Id = "kept"
	tn.n.SetMap(m)
	expectLookup(t, kept.NetNSPath, "web", "10.128.0.2")
	// The new Node wrote the rules afresh when it started: the port still
	// answering means it adopted the container.
	expectGreetingNow(t, tn.ns, "127.0.0.1:8080", "kept")
	if again := tn.mustAttach(spec("kept", "10.128.0.5/24", Port{Target: 80, Published: 8080})); !reflect.DeepEqual(again, kept) {
		t.Errorf("Attach of the adopted container = %+v, want %+v", again, kept)
	}

	tn.mustDetach("kept")
	tn.mustDetach("lost")
	serveIn(t, tn.ns, ":8080", "the node")
	expectGreetingNow(t, tn.ns, "127.0.0.1:8080", "the node")
	tn.expectDetached("kept", kept, 1)
	tn.expectDetached("lost", lost, 1)
	tn.expectAttachments()
	tn.expectNoContainers()
}

// TestNodeAttachRecoversStaleState attaches over what a crash or a reboot
// leaves.
func TestNodeAttachRecoversStaleState(t *testing.T) {
	tn := newTestNode(t)
	tests := []struct {
		name  string
		stale func(t *testing.T, tn *testNode, id string)
	}{
		{"unfinished attach, netns gone", func(t *testing.T, tn *testNode, id string) {
			// A crash after the record and the first veth were made;
			// then a reboot took the namespace.
			rec := record{ID: id, NetNSPath: tn.netnsPath(id), Links: []Link{{
				Host: hostVethName(id, 0), Container: "eth0", Address: netip.MustParsePrefix("10.128.0.9/24"), NetworkID: "n1",
			}}}
			if err := (records{dir: tn.recordDir()}).put(rec); err != nil {
				t.Fatal(err)
			}
			h := handleIn(t, tn.ns)
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostVethName(id, 0)}, PeerName: "stale0"}); err != nil {
				t.Fatal(err)
			}
		}},
		{"unfinished attach", func(t *testing.T, tn *testNode, id string) {
			if err := nspath.Create(tn.netnsPath(id)); err != nil {
				t.Fatal(err)
			}
			if err := (records{dir: tn.recordDir()}).put(record{ID: id, NetNSPath: tn.netnsPath(id)}); err != nil {
				t.Fatal(err)
			}
		}},
		{"netns without record", func(t *testing.T, tn *testNode, id string) {
			if err := nspath.Create(tn.netnsPath(id)); err != nil {
				t.Fatal(err)
			}
		}},
		{"netns gone", func(t *testing.T, tn *testNode, id string) {
			tn.mustAttach(spec(id, "10.128.0.8/24"))
			if err := nspath.Remove(tn.netnsPath(id)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := tn.in(t)
			id := fmt.Sprintf("stale-%d", i)
			tt.stale(t, tn, id)
			a, err := tn.attach(spec(id, "10.128.0.5/24", Port{Target: 80, Published: 8080}))
			if err != nil {
				t.Fatalf("Attach over stale state: %v", err)
			}
			if ok, err := nspath.IsNetNS(a.NetNSPath); !ok || err != nil {
				t.Fatalf("netns %s is not mounted (err %v)", a.NetNSPath, err)
			}
			serveIn(t, a.NetNSPath, ":80", id)
			expectGreeting(t, tn.ns, "127.0.0.1:8080", id)
			if err := tn.detach(id); err != nil {
				t.Fatalf("Detach: %v", err)
			}
			tn.expectDetached(id, a, 1)
			tn.expectNoContainers()
		})
	}
}

func TestNodeAttachFailureLeavesNothing(t *testing.T) {
	tn := newTestNode(t)
	onN1 := func(addr string) Interface {
		return Interface{NetworkID: "n1", Address: netip.MustParsePrefix(addr)}
	}
	tests := []struct {
		name    string
		ifaces  []Interface
		ports   []Port
		wantErr string
	}{
		{"IPv6 address", []Interface{onN1("fd00::5/64")}, nil, "fd00::5/64 of network n1 is not IPv4"},
		{"no address", []Interface{{NetworkID: "n1"}}, nil, "of network n1 is not IPv4"},
		{"bad address after a good one", []Interface{onN1("10.128.0.5/24"), {NetworkID: "n2", Address: netip.MustParsePrefix("fd00::6/64")}}, nil, "network n2 is not IPv4"},
		// The kernel refuses the second interface's route to the same
		// subnet, once the first interface is made and the second's veth.
		{"second interface on the same subnet", []Interface{onN1("10.128.0.5/24"), {NetworkID: "n1b", Address: netip.MustParsePrefix("10.128.0.6/24")}}, []Port{{Target: 80, Published: 8080}}, "network n1b"},
		{"bad port", []Interface{onN1("10.128.0.5/24")}, []Port{{Target: 80}}, "published port 0"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := tn.in(t)
			id := fmt.Sprintf("fail-%d", i)
			s := spec(id, "10.128.0.5/24")
			s.Interfaces, s.Ports = tt.ifaces, tt.ports
			a, err := tn.attach(s)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Attach = %+v, %v; want an error containing %q", a, err, tt.wantErr)
			}
			tn.expectDetached(id, Attachment{NetNSPath: tn.netnsPath(id), Files: tn.n.filePaths(id)}, len(tt.ifaces))
			tn.expectAttachments()
			tn.expectNoContainers()

			// Nothing stands in the way of the next attach.
			a = tn.mustAttach(spec(id, "10.128.0.5/24", Port{Target: 80, Published: 8080}))
			serveIn(t, a.NetNSPath, ":80", id)
			expectGreeting(t, tn.ns, "127.0.0.1:8080", id)
			tn.mustDetach(id)
			tn.expectNoContainers()
		})
	}
}

func TestNodeAttachDetachConcurrently(t *testing.T) {
	tn := newTestNode(t)
	const n = 10
	specOf := func(group string, i int) AttachSpec {
		s := spec(fmt.Sprintf("%s-%d", group, i), fmt.Sprintf("10.128.%d.%d/16", len(group), 10+i))
		if i%2 == 0 {
			s.Ports = []Port{{Target: 80, Published: uint32(len(group)*1000 + i)}}
		}
		return s
	}
	attachAll := func(group string) ([]Attachment, error) {
		atts := make([]Attachment, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { atts[i], errs[i] = tn.attach(specOf(group, i)) })
		}
		wg.Wait()
		return atts, errors.Join(errs...)
	}

	first, err := attachAll("a")
	if err != nil {
		t.Fatalf("concurrent Attach: %v", err)
	}
	seen := map[string]bool{}
	for _, a := range first {
		if seen[a.NetNSPath] || seen[a.IP] {
			t.Errorf("attachment %+v shares its netns or IP", a)
		}
		seen[a.NetNSPath], seen[a.IP] = true, true
	}
	var ids []string
	for i := range n {
		ids = append(ids, specOf("a", i).ID)
	}
	slices.Sort(ids)
	tn.expectAttachments(ids...)
	// Each Attach programmed its port before it returned, whatever the
	// others did meanwhile.
	port := func(group string, i int) string { return fmt.Sprintf("127.0.0.1:%d", len(group)*1000+i) }
	for i := 0; i < n; i += 2 {
		serveIn(t, first[i].NetNSPath, ":80", specOf("a", i).ID)
		expectGreetingNow(t, tn.ns, port("a", i), specOf("a", i).ID)
	}

	// At once: half of the first group is detached, the other half is
	// attached again, and a second group is attached.
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() {
			if i < n/2 {
				errs[i] = tn.detach(specOf("a", i).ID)
				return
			}
			a, err := tn.attach(specOf("a", i))
			if err == nil && !reflect.DeepEqual(a, first[i]) {
				err = fmt.Errorf("attach again = %+v, want %+v", a, first[i])
			}
			errs[i] = err
		})
	}
	var second []Attachment
	var errSecond error
	wg.Go(func() { second, errSecond = attachAll("bb") })
	wg.Wait()
	if err := errors.Join(append(errs, errSecond)...); err != nil {
		t.Fatal(err)
	}
	if len(tn.links("bv")) != n+n/2 {
		t.Errorf("veths on the node = %v, want %d", tn.links("bv"), n+n/2)
	}
	for i := 0; i < n; i += 2 {
		if i < n/2 {
			expectRefused(t, tn.ns, port("a", i))
		} else {
			expectGreetingNow(t, tn.ns, port("a", i), specOf("a", i).ID)
		}
	}

	for i := range n {
		if i >= n/2 {
			wg.Go(func() { errs[i] = tn.detach(specOf("a", i).ID) })
		}
		wg.Go(func() { errs[n+i] = tn.detach(specOf("bb", i).ID) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		tn.expectDetached(specOf("a", i).ID, first[i], 1)
		tn.expectDetached(specOf("bb", i).ID, second[i], 1)
	}
	tn.expectAttachments()
	tn.expectNoContainers()
}

// shopMap is a full network map: app shop on network n1 with service web
// (VIP 10.128.0.2, task web-1 on this node) and service client (tasks
// client-1 on this node and client-2 on a remote node).
func shopMap(tn *testNode, webReady bool) *berthv1.NetworkMap {
	const remote = "id-remote"
	onN1 := func(addr string) []*berthv1.TaskNetwork {
		return []*berthv1.TaskNetwork{{NetworkId: "n1", Network: "shop_default", Address: addr}}
	}
	service := func(id, name, vip string) *berthv1.NetworkService {
		return &berthv1.NetworkService{
			Id: id, Namespace: "default", App: "shop", Name: name, EndpointMode: berthv1.EndpointMode_ENDPOINT_MODE_VIP,
			Networks:   []*berthv1.ServiceNetwork{{Network: "shop_default"}},
			VirtualIps: []*berthv1.VirtualIP{{NetworkId: "n1", Network: "shop_default", Address: vip}},
		}
	}
	return &berthv1.NetworkMap{
		Full:     true,
		Networks: []*berthv1.Network{{Meta: &berthv1.Meta{Id: "n1"}, Namespace: "default", App: "shop", Name: "shop_default", Subnet: "10.128.0.0/24"}},
		Services: []*berthv1.NetworkService{service("s-web", "web", "10.128.0.2"), service("s-client", "client", "10.128.0.3")},
		Tasks: []*berthv1.NetworkTask{
			{Id: "web-1", ServiceId: "s-web", NodeId: tn.cfg.NodeID, Slot: 1, Ready: webReady, Networks: onN1("10.128.0.5/24")},
			{Id: "client-1", ServiceId: "s-client", NodeId: tn.cfg.NodeID, Slot: 1, Ready: true, Networks: onN1("10.128.0.6/24")},
			{Id: "client-2", ServiceId: "s-client", NodeId: remote, Slot: 2, Ready: true, Networks: onN1("10.128.0.9/24")},
		},
		Nodes: []*berthv1.NetworkNode{
			{Id: tn.cfg.NodeID, Address: nodeAddress, Subnet: tn.cfg.Subnet},
			{Id: remote, Address: "10.212.0.2", Subnet: "10.211.250.0/24"},
		},
	}
}

// lookupIn asks the DNS server of the container at path for name's A
// records.
func lookupIn(path, name string) ([]string, error) {
	var addrs []string
	err := nspath.Do(path, func() error {
		q := new(miekg.Msg).SetQuestion(miekg.Fqdn(name), miekg.TypeA)
		c := &miekg.Client{Timeout: 2 * time.Second}
		r, _, err := c.Exchange(q, dns.ListenAddr)
		if err != nil {
			return err
		}
		if r.Rcode != miekg.RcodeSuccess {
			return fmt.Errorf("%s: %s", name, miekg.RcodeToString[r.Rcode])
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*miekg.A); ok {
				addrs = append(addrs, a.A.String())
			}
		}
		return nil
	})
	return addrs, err
}

// expectLookup polls until the container at path resolves name to want.
func expectLookup(t *testing.T, path, name string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := lookupIn(path, name)
		slices.Sort(got)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s looks up %s: %v, %v; want %v", filepath.Base(path), name, got, err, want)
		}
	}
}

// expectOverlayRoute polls until the node routes dst through gw on its
// overlay device.
func expectOverlayRoute(t *testing.T, tn *testNode, dst, gw string) {
	t.Helper()
	h := handleIn(t, tn.ns)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipNet(netip.MustParsePrefix(dst + "/32"))}, netlink.RT_FILTER_DST)
		if err == nil && len(rs) == 1 && rs[0].Gw.String() == gw {
			if l, err := h.LinkByIndex(rs[0].LinkIndex); err == nil && l.Attrs().Name == overlayName(tn.cfg.Name) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes to %s = %v, %v; want one via %s on the overlay", dst, rs, err, gw)
		}
	}
}

func TestNodeSetMap(t *testing.T) {
	tn := newTestNode(t)
	web := tn.mustAttach(spec("web-1", "10.128.0.5/24"))
	client := tn.mustAttach(spec("client-1", "10.128.0.6/24"))
	serveIn(t, web.NetNSPath, "10.128.0.5:80", "web-1")

	tn.n.SetMap(shopMap(tn, true))
	// Any port of the VIP leads to the task.
	expectGreeting(t, client.NetNSPath, "10.128.0.2:80", "web-1")
	expectLookup(t, web.NetNSPath, "web", "10.128.0.2")
	expectLookup(t, client.NetNSPath, "web", "10.128.0.2")
	expectLookup(t, client.NetNSPath, "tasks.web.shop", "10.128.0.5")
	expectOverlayRoute(t, tn, "10.128.0.9", "10.211.250.1")
	if got := tn.n.Snapshot(); len(got.Tasks) != 3 {
		t.Errorf("Snapshot has tasks %v, want 3", got.Tasks)
	}

	// The task stops taking traffic: the VIP refuses connections, and
	// the name stays with no task behind it.
	tn.n.SetMap(&berthv1.NetworkMap{Tasks: []*berthv1.NetworkTask{{
		Id: "web-1", ServiceId: "s-web", NodeId: tn.cfg.NodeID, Slot: 1, Ready: false,
		Networks: []*berthv1.TaskNetwork{{NetworkId: "n1", Network: "shop_default", Address: "10.128.0.5/24"}},
	}}})
	expectRefused(t, client.NetNSPath, "10.128.0.2:80")
	expectLookup(t, client.NetNSPath, "tasks.web")
	expectLookup(t, client.NetNSPath, "web", "10.128.0.2")
	// The task itself is still reachable by its address.
	expectGreetingNow(t, client.NetNSPath, "10.128.0.5:80", "web-1")

	tn.mustDetach("web-1")
	tn.mustDetach("client-1")
	tn.expectNoContainers()
}

// TestNodePortsDespiteOverlayErrors attaches and detaches a container
// with a published port while the overlay cannot program a peer the map
// gives badly: the port depends on the rules alone.
func TestNodePortsDespiteOverlayErrors(t *testing.T) {
	tn := newTestNode(t)
	m := shopMap(tn, true)
	m.Nodes = append(m.Nodes, &berthv1.NetworkNode{Id: "v6", Address: "2001:db8::1", Subnet: "10.211.251.0/24"})
	tn.n.SetMap(m)
	if err := tn.do(func(n *Node) error { return n.program() }); err == nil || !strings.Contains(err.Error(), "node v6") {
		t.Fatalf("program = %v, want the overlay's error about node v6", err)
	}
	a := tn.mustAttach(spec("web-1", "10.128.0.5/24", Port{Target: 80, Published: 8080}))
	serveIn(t, a.NetNSPath, ":80", "web-1")
	expectGreetingNow(t, tn.ns, "127.0.0.1:8080", "web-1")
	// The rest of the map is programmed.
	expectOverlayRoute(t, tn, "10.128.0.9", "10.211.250.1")
	tn.mustDetach("web-1")
	tn.expectDetached("web-1", a, 1)
	tn.expectNoContainers()
}

func TestNodeDestroy(t *testing.T) {
	tn := newTestNode(t)
	a := tn.mustAttach(spec("web-1", "10.128.0.5/24", Port{Target: 80, Published: 8080}))
	b := tn.mustAttach(spec("web-2", "10.128.0.6/24"))
	tn.expectNodeUp()
	// Maps keep arriving while the node is destroyed, as from a session
	// that is still open.
	n := tn.n
	stopMaps := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stopMaps:
				return
			default:
				n.SetMap(shopMap(tn, true))
			}
		}
	})
	err := tn.do(func(n *Node) error { return n.Destroy(context.Background()) })
	close(stopMaps)
	wg.Wait()
	if err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	tn.expectDetached("web-1", a, 1)
	tn.expectDetached("web-2", b, 1)
	tn.expectNodeGone()

	// A destroyed node is closed: a late map programs nothing.
	n.SetMap(shopMap(tn, true))
	if _, err := tn.attach(spec("web-3", "10.128.0.7/24")); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Destroy = %v, want ErrClosed", err)
	}
	if err := tn.do(func(n *Node) error { return n.Destroy(context.Background()) }); !errors.Is(err, ErrClosed) {
		t.Errorf("Destroy again = %v, want ErrClosed", err)
	}
	tn.stop()
	tn.expectNodeGone()
}

// TestRemove removes what a Node left when its agent is gone.
func TestRemove(t *testing.T) {
	tn := newTestNode(t)
	a := tn.mustAttach(spec("web-1", "10.128.0.5/24", Port{Target: 80, Published: 8080}))
	b := tn.mustAttach(spec("web-2", "10.128.0.6/24"))
	tn.stop()
	// Close left everything in place for the next agent.
	tn.expectNodeUp()
	tn.expectAttachments("web-1", "web-2")
	for _, att := range []Attachment{a, b} {
		if ok, err := nspath.IsNetNS(att.NetNSPath); !ok || err != nil {
			t.Errorf("netns %s is gone after Close (err %v)", att.NetNSPath, err)
		}
	}

	must(t, tn.ns, func() error { return Remove(tn.cfg.Name, tn.cfg.DataDir, tn.cfg.NetNSDir) })
	tn.expectDetached("web-1", a, 1)
	tn.expectDetached("web-2", b, 1)
	tn.expectNodeGone()
	// Nothing left to remove is not an error.
	must(t, tn.ns, func() error { return Remove(tn.cfg.Name, tn.cfg.DataDir, tn.cfg.NetNSDir) })
}
