package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A net cluster's hosts are network namespaces on one LAN, 10.252.0.0/24:
// a "switch" namespace holds the bridge every host is plugged into, and
// the bridge's own address is a client outside the cluster (lanHost). A
// router namespace joins the LAN to one more subnet per routed node
// (10.252.N.0/24), so nodes can also sit in different L3 networks.
const (
	lanPrefix  = "10.252.0."
	serverAddr = lanPrefix + "1"
	lanAddr    = lanPrefix + "2"
	routerAddr = lanPrefix + "254"
	// firstNodeHost is the last byte of the first node's address.
	firstNodeHost = 10
)

// Hosts of a net cluster that are not nodes, for execIn and addr.
const (
	// lanHost is a machine on the LAN outside the cluster: a client.
	lanHost = "lan"
	// serverHost is the server's namespace.
	serverHost = "server"
)

// netNodeArgs are flags every agent of a net cluster starts with (the
// overlay may need some).
var netNodeArgs []string

// netClusters counts the net clusters made, so their namespaces' names
// differ.
var netClusters int

// netCluster is a cluster whose server and agents are separate hosts: each
// in a network namespace of its own, with its own address, on a switch.
// The embedded cluster's CLI runs in the server's namespace.
type netCluster struct {
	*cluster
	prefix string // of every namespace's name
	sw     string // the switch's namespace
	router string // the router's namespace
	hosts  map[string]netHost
	ports  int // veths plugged into the switch
	lan    int // nodes on the LAN
	routed int // subnets behind the router
	images []string
}

// netHost is one host of a net cluster.
type netHost struct {
	ns   string
	addr string
}

// newNetCluster starts a server and one agent per name, each in a network
// namespace of its own plugged into one switch. Cleanup stops every
// process, then removes its namespace, even when the test fails.
func newNetCluster(t testing.TB, names ...string) *netCluster {
	t.Helper()
	netClusters++
	c := &netCluster{
		prefix: fmt.Sprintf("berth-e2e-%d-n%d-", os.Getpid(), netClusters),
		hosts:  map[string]netHost{},
	}
	// Namespaces are made before the processes in them, so their cleanups
	// run after the processes stopped.
	c.sw = c.prefix + "switch"
	newNetNS(t, c.sw)
	ip(t, "-n", c.sw, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", c.sw, "addr", "add", lanAddr+"/24", "dev", "br0")
	ip(t, "-n", c.sw, "link", "set", "br0", "up")
	ip(t, "-n", c.sw, "route", "add", "10.252.0.0/16", "via", routerAddr)
	c.hosts[lanHost] = netHost{ns: c.sw, addr: lanAddr}

	c.router = c.prefix + "router"
	newNetNS(t, c.router)
	c.plug(t, c.router, routerAddr)
	ip(t, "netns", "exec", c.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")

	srv := c.prefix + serverHost
	newNetNS(t, srv)
	c.plug(t, srv, serverAddr)
	ip(t, "-n", srv, "route", "add", "10.252.0.0/16", "via", routerAddr)
	c.hosts[serverHost] = netHost{ns: srv, addr: serverAddr}
	c.cluster = newCluster(t, inNetNS(srv, serverAddr))

	for _, name := range names {
		c.addNode(name)
	}
	return c
}

// plug connects namespace ns to the switch with address addr/24.
func (c *netCluster) plug(t testing.TB, ns, addr string) {
	t.Helper()
	c.ports++
	port := fmt.Sprintf("p%d", c.ports)
	ip(t, "-n", c.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	ip(t, "-n", c.sw, "link", "set", port, "master", "br0", "up")
	ip(t, "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	ip(t, "-n", ns, "link", "set", "eth0", "up")
}

// addNode starts an agent called name on a new host of the LAN. Images
// imported so far are imported into it too.
func (c *netCluster) addNode(name string) *proc {
	c.t.Helper()
	ns, addr := c.newHost(name), fmt.Sprintf("%s%d", lanPrefix, firstNodeHost+c.lan)
	c.lan++
	c.plug(c.t, ns, addr)
	ip(c.t, "-n", ns, "route", "add", "10.252.0.0/16", "via", routerAddr)
	return c.startNode(name, ns, addr)
}

// addRoutedNode starts an agent called name on a host of a subnet of its
// own (10.252.N.0/24), which reaches the LAN through the router: a node in
// another L3 network than the others.
func (c *netCluster) addRoutedNode(name string) *proc {
	c.t.Helper()
	c.routed++
	ns := c.newHost(name)
	gw, addr := fmt.Sprintf("10.252.%d.1", c.routed), fmt.Sprintf("10.252.%d.2", c.routed)
	link(c.t, c.router, fmt.Sprintf("r%d", c.routed), gw+"/24", ns, "eth0", addr+"/24")
	ip(c.t, "-n", ns, "route", "add", "default", "via", gw)
	return c.startNode(name, ns, addr)
}

// newHost makes the namespace of node name.
func (c *netCluster) newHost(name string) string {
	c.t.Helper()
	if _, dup := c.hosts[name]; dup || name == "" {
		c.t.Fatalf("net cluster: host name %q is empty or taken", name)
	}
	ns := c.prefix + name
	newNetNS(c.t, ns)
	return ns
}

func (c *netCluster) startNode(name, ns, addr string) *proc {
	c.t.Helper()
	c.hosts[name] = netHost{ns: ns, addr: addr}
	args := append([]string{"--listen", addr + ":0", "--gossip-addr", addr + ":7946"}, netNodeArgs...)
	p := c.startAgentIn(ns, name, args...)
	for _, img := range c.images {
		c.mustBerth("image", "import", "--node", name, img)
	}
	return p
}

// host returns the host called name (a node, lanHost or serverHost).
func (c *netCluster) host(name string) netHost {
	c.t.Helper()
	h, ok := c.hosts[name]
	if !ok {
		c.t.Fatalf("net cluster has no host %q", name)
	}
	return h
}

// addr is the address of host name on its network.
func (c *netCluster) addr(name string) string { return c.host(name).addr }

// execIn runs a program of this machine in the network namespace of host
// (a node, lanHost or serverHost) and returns its output; the error holds
// what it wrote to stderr.
func (c *netCluster) execIn(host string, args ...string) (string, error) {
	ns := c.host(host).ns
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + netnsPath(ns), "--"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("on %s: %s: %w: %s", host, strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// testapp runs the test program (e2e/testapp, built by hack/images.sh) on
// host, like `c.testapp("alpha", "get", "http://10.252.0.11:8080/")`.
func (c *netCluster) testapp(host string, args ...string) (string, error) {
	return c.execIn(host, append([]string{testappBin()}, args...)...)
}

// inTask runs the test program in the container of a task (a task ID or
// APP/SERVICE[.SLOT], as berth exec takes it): a client inside the
// cluster's networks, resolving names with the container's DNS.
func (c *netCluster) inTask(target string, args ...string) (string, error) {
	out, errOut, err := c.berth(append([]string{"exec", target, "--", "testapp"}, args...)...)
	if err != nil {
		return out, fmt.Errorf("in %s: testapp %s: %w: %s", target, strings.Join(args, " "), err, strings.TrimSpace(errOut))
	}
	return out, nil
}

// importImageFile imports an image archive into every node, and into the
// nodes added later.
func (c *netCluster) importImageFile(path string) {
	c.t.Helper()
	c.mustBerth("image", "import", path)
	c.images = append(c.images, path)
}

// importTestapp imports localhost/testapp:latest.
func (c *netCluster) importTestapp() { c.importImageFile(testappImage()) }

// testappImage is the archive of localhost/testapp:latest, which
// hack/images.sh builds beside the busybox image.
func testappImage() string { return filepath.Join(filepath.Dir(busyboxImage), "testapp.tar") }

// testappBin is the static test program hack/images.sh builds.
func testappBin() string { return filepath.Join(filepath.Dir(busyboxImage), "testapp") }

// servedBy is what testapp serve's GET / tells: who answered.
type servedBy struct {
	name, hostname, ip string
}

// parseServedBy reads "NAME HOSTNAME IP\n"; ok is false for anything else.
func parseServedBy(out string) (servedBy, bool) {
	f := strings.Fields(out)
	if len(f) != 3 {
		return servedBy{}, false
	}
	return servedBy{f[0], f[1], f[2]}, true
}

// reach requests url from inside task target until testapp serve named
// want answers (names may take a moment to appear), and returns who did.
func (c *netCluster) reach(target, url, want string) servedBy {
	c.t.Helper()
	var id servedBy
	eventually(c.t, 30*time.Second, func() (bool, string) {
		out, err := c.inTask(target, "get", "-timeout", "2s", url)
		var ok bool
		id, ok = parseServedBy(out)
		return err == nil && ok && id.name == want, fmt.Sprintf("from %s, %s: %v %q, want an answer of %s", target, url, err, out, want)
	})
	return id
}

// unreachable checks that a request from inside task target to url gets
// no answer (a refused name, or a dropped packet: a timeout).
func (c *netCluster) unreachable(target, url string) {
	c.t.Helper()
	if out, err := c.inTask(target, "get", "-timeout", "2s", url); err == nil {
		c.t.Fatalf("from %s, %s answered %q; want no way there", target, url, out)
	}
}

// lookup resolves name from inside task target, and fails the test if it
// has no address.
func (c *netCluster) lookup(target, name string) []string {
	c.t.Helper()
	var addrs []string
	eventually(c.t, 30*time.Second, func() (bool, string) {
		out, err := c.inTask(target, "lookup", "-timeout", "2s", name)
		addrs = strings.Fields(out)
		return err == nil && len(addrs) > 0, fmt.Sprintf("from %s, lookup %s: %v %q", target, name, err, out)
	})
	return addrs
}

// taskID returns the ID of a running task of target on node.
func (c *netCluster) taskID(target, node string) string {
	c.t.Helper()
	c.waitRunningOn(target, node, 1, 60*time.Second)
	return c.taskOn(c.ps(target), node).ID
}

// serveOn runs testapp serve called name on port of host (a host of the
// LAN outside any container), until the test ends.
func (c *netCluster) serveOn(host, name string, port int) {
	c.t.Helper()
	p := startProc(c.t, "testapp on "+host, nil, "nsenter", "--net="+netnsPath(c.host(host).ns), "--",
		testappBin(), "serve", "-port", fmt.Sprint(port), "-name", name)
	p.waitOutput(c.t, "serving on", 30*time.Second)
}

const spreadTestappCompose = `
services:
  echo:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "echo"]
    ports:
      - {target: 8080, published: 8080, mode: host}
    deploy:
      replicas: 3
      placement:
        max_replicas_per_node: 1
`

// TestNodesAsSeparateHosts proves the net cluster harness: three agents,
// each on a host of its own (gamma in another subnet, behind a router),
// run one testapp task each. Every task answers inside its container
// (berth exec), and every node answers on its own address, to a client on
// the LAN, with the task it runs (the port is published in host mode: each node's leads to its own task).
func TestNodesAsSeparateHosts(t *testing.T) {
	c := newNetCluster(t, "alpha", "beta")
	c.addRoutedNode("gamma")
	c.importTestapp()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", spreadTestappCompose), "-p", "spread")
	tasks := c.waitRunning("spread/echo", 3, 60*time.Second)
	for _, node := range []string{"alpha", "beta", "gamma"} {
		tk := c.taskOn(tasks, node)
		out, err := c.inTask(tk.ID, "get", "http://127.0.0.1:8080/")
		inside, ok := parseServedBy(out)
		if err != nil || !ok || inside.name != "echo" || inside.ip != "127.0.0.1" {
			t.Fatalf("task %s on %s: %v: %q, want testapp's identity on 127.0.0.1", tk.ID, node, err, out)
		}
		// The published port leads to the same task, on its container
		// address.
		url := fmt.Sprintf("http://%s:8080/", c.addr(node))
		eventually(t, 30*time.Second, func() (bool, string) {
			got, err := c.testapp(lanHost, "get", "-timeout", "2s", url)
			outside, ok := parseServedBy(got)
			return err == nil && ok && outside.name == "echo" && outside.hostname == inside.hostname,
				fmt.Sprintf("%s from the LAN: %v %q, want the identity of task %s (%q)", url, err, got, tk.ID, out)
		})
	}
	c.mustBerth("delete", "spread")
}
