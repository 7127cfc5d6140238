package network

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests build real bridges, namespaces and iptables rules, so they
// need root and the CNI plugins. Each test has its own node name (so its
// own bridge and chains) and a free 10.244.x.0/24 subnet; traffic goes only
// from 127.0.0.1 into namespaces the test created.

func requireHost(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and bridges")
	}
	for _, p := range requiredPlugins {
		if findPlugin([]string{DefaultPluginDir}, p) == "" {
			t.Skipf("CNI plugin %s missing in %s; run hack/setup-host.sh", p, DefaultPluginDir)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables missing; run hack/setup-host.sh")
	}
}

// testConfig returns a Config with a node name and subnet no other test or
// agent on this machine uses.
func testConfig(t *testing.T) Config {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	return Config{
		Name:    "test-" + hex.EncodeToString(b),
		DataDir: t.TempDir(),
		Subnet:  freeSubnet(t).String(),
	}
}

func freeSubnet(t *testing.T) netip.Prefix {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(mathrand.IntN(256)), 0}), 24)
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && p.Contains(ip.Unmap()) {
					used = true
				}
			}
		}
		if !used {
			return p
		}
	}
	t.Fatal("no free 10.244.x.0/24 subnet")
	return netip.Prefix{}
}

// newTestCNI makes a CNI for the test and removes everything it leaves on
// the host when the test ends, failed or not, then checks nothing of it is
// left in the nat table.
func newTestCNI(t *testing.T, cfg Config) *CNI {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		// A fresh handle: the test may have closed c.
		if fresh, err := New(cfg); err != nil {
			t.Errorf("cleanup: %v", err)
		} else if err := fresh.Destroy(ctx); err != nil {
			t.Errorf("cleanup: Destroy: %v", err)
		}
		if err := deleteLink(ctx, c.Bridge()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		leftovers, _ := filepath.Glob(filepath.Join(c.cfg.NetNSDir, c.names.netnsPrefix+"*"))
		for _, p := range leftovers {
			t.Errorf("cleanup: netns %s was left behind", p)
			removeNetNS(p)
		}
		if rules := natRulesMatching(t, "berth masquerade "+c.NetworkName()); len(rules) > 0 {
			t.Errorf("cleanup: the masquerade rule of network %s was left behind:\n%s", c.NetworkName(), strings.Join(rules, "\n"))
		}
		if rules := natRulesMatching(t, `name: \"`+c.NetworkName()+`\"`); len(rules) > 0 {
			t.Errorf("cleanup: nat rules of network %s left behind:\n%s", c.NetworkName(), strings.Join(rules, "\n"))
		}
	})
	return c
}

// natRulesMatching returns the nat table rules that contain s.
func natRulesMatching(t *testing.T, s string) []string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	var rules []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, s) {
			rules = append(rules, line)
		}
	}
	return rules
}

// ruleComment is the comment the CNI plugins put on the nat rules of id.
func ruleComment(c *CNI, id string) string {
	return fmt.Sprintf(`name: \"%s\" id: \"%s\"`, c.NetworkName(), id)
}

// freePort returns a TCP port nothing on the host listens on now.
func freePort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

// serveInNetNS listens on port inside the namespace at path and answers
// every connection with greeting. It stops when the test ends.
func serveInNetNS(t *testing.T, path string, port uint32, greeting string) {
	t.Helper()
	var l net.Listener
	err := inNetNS(path, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listen in netns: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(conn, greeting)
			conn.Close()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

// greet connects to addr and returns the line the server sends.
func greet(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// eth0Addrs returns the IPv4 addresses of eth0 inside the namespace.
func eth0Addrs(t *testing.T, path string) []netip.Addr {
	t.Helper()
	var got []netip.Addr
	err := inNetNS(path, func() error {
		iface, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				ip, _ := netip.AddrFromSlice(ipn.IP.To4())
				got = append(got, ip)
			}
		}
		return err
	})
	if err != nil {
		t.Fatalf("read eth0 in netns: %v", err)
	}
	return got
}

func TestAttachPublishesPortsOnLoopback(t *testing.T) {
	requireHost(t)
	cfg := testConfig(t)
	c := newTestCNI(t, cfg)
	ctx := context.Background()
	const id = "task-publish"

	ports := []Port{
		{Target: 8080, Published: freePort(t)},                      // all addresses
		{Target: 8080, Published: freePort(t), HostIP: "127.0.0.1"}, // loopback only
	}
	a, err := c.Attach(ctx, id, ports)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	subnet := netip.MustParsePrefix(cfg.Subnet)
	ip, err := netip.ParseAddr(a.IP)
	if err != nil || !subnet.Contains(ip) {
		t.Fatalf("Attach IP = %q, want an address in %s", a.IP, subnet)
	}
	if ok, err := isNetNS(a.NetNSPath); !ok || err != nil {
		t.Fatalf("netns %s is not mounted (err %v)", a.NetNSPath, err)
	}
	if got := eth0Addrs(t, a.NetNSPath); len(got) != 1 || got[0] != ip {
		t.Fatalf("eth0 addresses in netns = %v, want [%s]", got, ip)
	}
	var loFlags net.Flags
	if err := inNetNS(a.NetNSPath, func() error {
		lo, err := net.InterfaceByName("lo")
		if err == nil {
			loFlags = lo.Flags
		}
		return err
	}); err != nil || loFlags&net.FlagUp == 0 {
		t.Fatalf("loopback in netns: flags %v, err %v; want it up", loFlags, err)
	}

	if rules := natRulesMatching(t, ruleComment(c, id)); len(rules) < 1 {
		t.Errorf("nat rules of %s = %q, want its port rules", id, rules)
	}
	if rules := natRulesMatching(t, "berth masquerade "+c.NetworkName()); len(rules) != 1 || !strings.Contains(rules[0], cfg.Subnet) {
		t.Errorf("masquerade rules of the network = %q, want one for %s", rules, cfg.Subnet)
	}

	serveInNetNS(t, a.NetNSPath, 8080, "hello from "+id)
	for _, p := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", p.Published)
		got, err := greet(addr)
		if err != nil || got != "hello from "+id {
			t.Errorf("greet(%s) = %q, %v; want the container's greeting", addr, got, err)
		}
	}

	if err := c.Detach(ctx, id); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	assertDetached(t, c, id, a)
	for _, p := range ports {
		if rules := natRulesMatching(t, fmt.Sprintf("--dport %d ", p.Published)); len(rules) > 0 {
			t.Errorf("rules of port %d remain after Detach:\n%s", p.Published, strings.Join(rules, "\n"))
		}
	}
}

// assertDetached checks that nothing of attachment a of id is left.
func assertDetached(t *testing.T, c *CNI, id string, a Attachment) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(c.IPAMDir(), a.IP)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IP allocation file of %s still exists (stat err %v)", a.IP, err)
	}
	if _, err := os.Stat(a.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s still exists (stat err %v)", a.NetNSPath, err)
	}
	if rules := natRulesMatching(t, ruleComment(c, id)); len(rules) > 0 {
		t.Errorf("nat rules of %s remain:\n%s", id, strings.Join(rules, "\n"))
	}
	if ids, err := c.Attachments(); err != nil || len(ids) != 0 {
		t.Errorf("Attachments() = %v, %v; want none", ids, err)
	}
}

func TestAttachIsIdempotent(t *testing.T) {
	requireHost(t)
	c := newTestCNI(t, testConfig(t))
	ctx := context.Background()
	const id = "task-twice"
	ports := []Port{{Target: 80, Published: freePort(t)}}

	first, err := c.Attach(ctx, id, ports)
	if err != nil {
		t.Fatalf("first Attach: %v", err)
	}
	second, err := c.Attach(ctx, id, ports)
	if err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	if first != second {
		t.Errorf("second Attach = %+v, want %+v", second, first)
	}
	if _, err := c.Attach(ctx, id, []Port{{Target: 81, Published: freePort(t)}}); err == nil {
		t.Errorf("Attach with other ports succeeded, want an error")
	}
	entries, err := os.ReadDir(c.IPAMDir())
	if err != nil {
		t.Fatal(err)
	}
	var allocated []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			allocated = append(allocated, e.Name())
		}
	}
	if len(allocated) != 1 {
		t.Errorf("IP allocations = %v, want exactly one", allocated)
	}
	if ids, err := c.Attachments(); err != nil || len(ids) != 1 || ids[0] != id {
		t.Errorf("Attachments() = %v, %v; want [%s]", ids, err, id)
	}
	for range 2 {
		if err := c.Detach(ctx, id); err != nil {
			t.Fatalf("Detach: %v", err)
		}
	}
	assertDetached(t, c, id, first)
}

func TestDetachUnknownID(t *testing.T) {
	requireHost(t)
	c := newTestCNI(t, testConfig(t))
	if err := c.Detach(context.Background(), "never-attached"); err != nil {
		t.Fatalf("Detach of an unknown id = %v, want nil", err)
	}
}

// TestDetachAfterRestart detaches with a new handle, as an agent does after
// a restart, including a container whose namespace vanished meanwhile.
func TestDetachAfterRestart(t *testing.T) {
	requireHost(t)
	cfg := testConfig(t)
	c := newTestCNI(t, cfg)
	ctx := context.Background()

	kept, err := c.Attach(ctx, "task-kept", []Port{{Target: 80, Published: freePort(t)}})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	lost, err := c.Attach(ctx, "task-lost", []Port{{Target: 80, Published: freePort(t)}})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.Attach(ctx, "task-late", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close = %v, want ErrClosed", err)
	}
	if err := removeNetNS(lost.NetNSPath); err != nil {
		t.Fatal(err)
	}

	restarted, err := New(cfg)
	if err != nil {
		t.Fatalf("New after restart: %v", err)
	}
	ids, err := restarted.Attachments()
	if err != nil || len(ids) != 2 {
		t.Fatalf("Attachments() after restart = %v, %v; want both ids", ids, err)
	}
	for id, a := range map[string]Attachment{"task-kept": kept, "task-lost": lost} {
		if err := restarted.Detach(ctx, id); err != nil {
			t.Fatalf("Detach(%s) after restart: %v", id, err)
		}
		assertDetachedOne(t, id, restarted, a)
	}
	if ids, err := restarted.Attachments(); err != nil || len(ids) != 0 {
		t.Errorf("Attachments() = %v, %v; want none", ids, err)
	}
}

// assertDetachedOne is assertDetached for one of several attachments.
func assertDetachedOne(t *testing.T, id string, c *CNI, a Attachment) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(c.IPAMDir(), a.IP)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: IP allocation file of %s still exists (stat err %v)", id, a.IP, err)
	}
	if _, err := os.Stat(a.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: netns %s still exists (stat err %v)", id, a.NetNSPath, err)
	}
	if rules := natRulesMatching(t, ruleComment(c, id)); len(rules) > 0 {
		t.Errorf("%s: nat rules remain:\n%s", id, strings.Join(rules, "\n"))
	}
}

// TestAttachRecoversStaleState attaches over what a crash or a reboot
// leaves: a record of an Attach that never finished, and a record whose
// namespace is gone.
func TestAttachRecoversStaleState(t *testing.T) {
	requireHost(t)
	c := newTestCNI(t, testConfig(t))
	ctx := context.Background()
	tests := []struct {
		name  string
		stale func(t *testing.T, id string)
	}{
		{"unfinished attach", func(t *testing.T, id string) {
			if err := createNetNS(c.netnsPath(id)); err != nil {
				t.Fatal(err)
			}
			if err := c.records.put(record{ID: id, NetNSPath: c.netnsPath(id)}); err != nil {
				t.Fatal(err)
			}
		}},
		{"netns without record", func(t *testing.T, id string) {
			if err := createNetNS(c.netnsPath(id)); err != nil {
				t.Fatal(err)
			}
		}},
		{"netns gone", func(t *testing.T, id string) {
			if _, err := c.Attach(ctx, id, nil); err != nil {
				t.Fatal(err)
			}
			if err := removeNetNS(c.netnsPath(id)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("task-stale-%d", i)
			tt.stale(t, id)
			a, err := c.Attach(ctx, id, nil)
			if err != nil {
				t.Fatalf("Attach over stale state: %v", err)
			}
			if got := eth0Addrs(t, a.NetNSPath); len(got) != 1 || got[0].String() != a.IP {
				t.Errorf("eth0 addresses in netns = %v, want [%s]", got, a.IP)
			}
			if err := c.Detach(ctx, id); err != nil {
				t.Fatalf("Detach: %v", err)
			}
			assertDetached(t, c, id, a)
		})
	}
}

func TestAttachConcurrently(t *testing.T) {
	requireHost(t)
	c := newTestCNI(t, testConfig(t))
	ctx := context.Background()
	const n = 4
	attachments := make([]Attachment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			attachments[i], errs[i] = c.Attach(ctx, fmt.Sprintf("task-par-%d", i), nil)
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, a := range attachments {
		if errs[i] != nil {
			t.Fatalf("Attach %d: %v", i, errs[i])
		}
		if seen[a.IP] {
			t.Errorf("IP %s given twice", a.IP)
		}
		seen[a.IP] = true
	}
	for i := range n {
		wg.Go(func() { errs[i] = c.Detach(ctx, fmt.Sprintf("task-par-%d", i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Detach %d: %v", i, err)
		}
	}
	if ids, err := c.Attachments(); err != nil || len(ids) != 0 {
		t.Errorf("Attachments() = %v, %v; want none", ids, err)
	}
}

// TestAttachFailureRollsBack makes the bridge plugin fail after it has done
// its work, and checks that Attach undoes all of it.
func TestAttachFailureRollsBack(t *testing.T) {
	requireHost(t)
	plugins := t.TempDir()
	for _, p := range requiredPlugins {
		if err := os.Symlink(filepath.Join(DefaultPluginDir, p), filepath.Join(plugins, p)); err != nil {
			t.Fatal(err)
		}
	}
	failingBridge := "#!/bin/sh\n" +
		`if [ "$CNI_COMMAND" = ADD ]; then ` + DefaultPluginDir + "/bridge >/dev/null; exit 1; fi\n" +
		"exec " + DefaultPluginDir + "/bridge\n"
	bridge := filepath.Join(plugins, "bridge")
	if err := os.Remove(bridge); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bridge, []byte(failingBridge), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.PluginDirs = []string{plugins}
	c := newTestCNI(t, cfg)
	const id = "task-fail"

	if _, err := c.Attach(context.Background(), id, []Port{{Target: 80, Published: freePort(t)}}); err == nil {
		t.Fatalf("Attach with a failing bridge plugin succeeded")
	}
	entries, _ := os.ReadDir(c.IPAMDir())
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			t.Errorf("IP %s is still allocated", e.Name())
		}
	}
	assertDetached(t, c, id, Attachment{NetNSPath: c.netnsPath(id), IP: "none"})
}

func TestNewRefusesASubnetInUse(t *testing.T) {
	requireHost(t)
	cfg := testConfig(t)
	c := newTestCNI(t, cfg)
	if _, err := c.Attach(context.Background(), "task-first", nil); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	// Another node on the same machine given the same subnet.
	other := cfg
	other.Name = cfg.Name + "-other"
	other.DataDir = t.TempDir()
	_, err := New(other)
	if err == nil || !strings.Contains(err.Error(), "already used by interface "+c.Bridge()) {
		t.Fatalf("New with a subnet in use = %v, want an error naming %s", err, c.Bridge())
	}
	// The node itself, restarted, keeps its subnet.
	if _, err := New(cfg); err != nil {
		t.Fatalf("New for the same node again: %v", err)
	}
}
