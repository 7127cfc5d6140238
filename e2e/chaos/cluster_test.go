package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/clientconfig"
)

// A cluster lives in network namespaces of its own: a hub namespace holds
// the etcd members, the servers and the CLI (at hubAddr, on its
// loopback); each agent has a namespace linked to the hub by a veth pair
// (agent i: 10.254.i.2, the hub's end 10.254.i.1), and the hub routes
// between agents. Cutting a node off is taking its hub end down. Two
// clusters never share a namespace, so the addresses repeat freely.
const hubAddr = "10.254.0.1"

// clusters numbers the clusters of this run, for unique names.
var clusters int

// cluster is one Berth cluster under test.
type cluster struct {
	t     *testing.T
	class string // fault class, for the ledger
	dir   string
	hub   string // the hub's network namespace
	// ctdNS is the containerd namespace of the cluster's containers.
	ctdNS      string
	configPath string
	etcd       []*etcdMember
	servers    []*proc
	serverArgs []string
	agents     map[string]*agent
	// containerds are the containerd sockets the agents use, to clean up.
	containerds map[string]bool
	// mounts are file systems the test mounted, unmounted last.
	mounts []string
}

// etcdMember is one member of an external three-member etcd cluster.
type etcdMember struct {
	*proc
	clientURL string
}

// agent is one node's agent process.
type agent struct {
	*proc
	name   string // node name, unique on the machine
	index  int    // its link is 10.254.index.0/30
	netns  string
	dir    string // data dir
	id     string // node id, from its first start
	hubEnd string // the veth in the hub that leads to it
}

type clusterSpec struct {
	// servers on a three-member etcd; 0 is one server on its embedded etcd.
	servers    int
	serverArgs []string
}

// newCluster starts the servers of a cluster. Everything it and its agents
// leave is removed when the test ends, also on failure; what cannot be
// removed counts as leaked for class.
func newCluster(t *testing.T, class string, spec clusterSpec) *cluster {
	t.Helper()
	needRoot(t)
	clusters++
	dir, err := os.MkdirTemp(runRoot, class+"-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t: t, class: class, dir: dir, configPath: filepath.Join(dir, "config"),
		hub:         fmt.Sprintf("%s-%d-hub", runID, clusters),
		ctdNS:       fmt.Sprintf("berth-chaos-%s-%d", runID, clusters),
		agents:      map[string]*agent{},
		containerds: map[string]bool{defaultContainerd: true},
	}
	// Cleanups run last first: the leak count after everything else.
	t.Cleanup(func() {
		tally.add(class, counts{leaked: c.countLeaks()})
		os.RemoveAll(dir)
	})
	newNetNS(t, c.hub)
	t.Cleanup(func() { deleteNetNS(t, c.hub) })
	must(t, "ip", "-n", c.hub, "addr", "add", hubAddr+"/32", "dev", "lo")
	must(t, "ip", "netns", "exec", c.hub, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// After every process has stopped (their cleanups come later).
	t.Cleanup(c.teardown)

	common := []string{"--log-level", "debug", "--metrics-addr", "", "--container-range", "10.200.0.0/16", "--network-range", "10.201.0.0/16"}
	c.serverArgs = append(common, spec.serverArgs...)
	if spec.servers == 0 {
		c.startServer(0, c.serverArgs)
	} else {
		c.startEtcd()
		endpoints := []string{}
		for _, m := range c.etcd {
			endpoints = append(endpoints, m.clientURL)
		}
		c.serverArgs = append(c.serverArgs, "--etcd-endpoints", strings.Join(endpoints, ","), "--leader-lease", "1s",
			// Servers share the key-encryption key the first one made.
			"--kek-file", filepath.Join(dir, "server-0", "key-encryption-key"))
		for i := range spec.servers {
			c.startServer(i, c.serverArgs)
		}
	}
	cfg, err := clientconfig.Load(filepath.Join(dir, "config-0"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server = strings.Join(c.serverAddrs(), ",")
	if err := clientconfig.Save(c.configPath, cfg); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) serverAddrs() []string {
	var out []string
	for i := range c.servers {
		out = append(out, fmt.Sprintf("%s:%d", hubAddr, 4242+i))
	}
	return out
}

// startServer starts server i. Each writes an admin config of its own
// (a restart rewrites it), naming only itself; the CLI's names them all.
func (c *cluster) startServer(i int, extra []string) {
	c.t.Helper()
	cfg := filepath.Join(c.dir, fmt.Sprintf("config-%d", i))
	argv := append([]string{berthBin, "server", "--config", cfg, "--data-dir", filepath.Join(c.dir, fmt.Sprintf("server-%d", i)),
		"--listen", fmt.Sprintf("%s:%d", hubAddr, 4242+i)}, extra...)
	p := spawn(c.t, fmt.Sprintf("server %d", i), c.hub, argv...)
	p.waitOutput("Join a node with:", 90*time.Second)
	c.servers = append(c.servers, p)
}

// startEtcd starts three etcd members in the hub. The short election
// timeout lets etcd grant the one-second leader lease.
func (c *cluster) startEtcd() {
	c.t.Helper()
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, 2380+10*i))
	}
	for i := range 3 {
		client, peer := fmt.Sprintf("http://127.0.0.1:%d", 2379+10*i), fmt.Sprintf("http://127.0.0.1:%d", 2380+10*i)
		p := spawn(c.t, fmt.Sprintf("etcd m%d", i), c.hub, "etcd", "--name", fmt.Sprintf("m%d", i),
			"--data-dir", filepath.Join(c.dir, fmt.Sprintf("etcd-%d", i)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", c.hub, "--heartbeat-interval", "50", "--election-timeout", "500")
		c.etcd = append(c.etcd, &etcdMember{proc: p, clientURL: client})
	}
	for _, m := range c.etcd {
		m.waitOutput("ready to serve client requests", 60*time.Second)
	}
}

// addAgent starts a node called short (its real name adds the run's id)
// in a namespace of its own and waits until it joined.
func (c *cluster) addAgent(short string, extra ...string) *agent {
	c.t.Helper()
	i := len(c.agents) + 1
	a := &agent{
		name:   fmt.Sprintf("%s-%d-%s", runID, clusters, short),
		index:  i,
		netns:  fmt.Sprintf("%s-%d-%s", runID, clusters, short),
		dir:    filepath.Join(c.dir, "agent-"+short),
		hubEnd: fmt.Sprintf("n%d", i),
	}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	c.agents[short] = a // teardown deletes its namespace from now on
	newNetNS(c.t, a.netns)
	addr := fmt.Sprintf("10.254.%d.2", i)
	must(c.t, "ip", "-n", c.hub, "link", "add", a.hubEnd, "type", "veth", "peer", "name", "uplink", "netns", a.netns)
	must(c.t, "ip", "-n", c.hub, "addr", "add", fmt.Sprintf("10.254.%d.1/30", i), "dev", a.hubEnd)
	must(c.t, "ip", "-n", a.netns, "addr", "add", addr+"/30", "dev", "uplink")
	must(c.t, "ip", "-n", c.hub, "link", "set", a.hubEnd, "up")
	must(c.t, "ip", "-n", a.netns, "link", "set", "uplink", "up")
	must(c.t, "ip", "-n", a.netns, "route", "add", "default", "via", fmt.Sprintf("10.254.%d.1", i))
	return a.join(c, extra, addr)
}

// peerLink links two agents' namespaces directly, so that they reach
// each other (gossip, overlay) without the hub: a node cut off from the
// hub stays alive to gossip through its peer.
func (c *cluster) peerLink(a, b *agent) {
	c.t.Helper()
	net := fmt.Sprintf("10.254.%d", 100+a.index*10+b.index)
	must(c.t, "ip", "-n", a.netns, "link", "add", "peer", "type", "veth", "peer", "name", "peer", "netns", b.netns)
	must(c.t, "ip", "-n", a.netns, "addr", "add", net+".1/30", "dev", "peer")
	must(c.t, "ip", "-n", b.netns, "addr", "add", net+".2/30", "dev", "peer")
	must(c.t, "ip", "-n", a.netns, "link", "set", "peer", "up")
	must(c.t, "ip", "-n", b.netns, "link", "set", "peer", "up")
	must(c.t, "ip", "-n", a.netns, "route", "add", fmt.Sprintf("10.254.%d.2", b.index), "via", net+".2")
	must(c.t, "ip", "-n", b.netns, "route", "add", fmt.Sprintf("10.254.%d.2", a.index), "via", net+".1")
}

var joinedRe = regexp.MustCompile(`joined as node (\S+)`)

// join starts the agent process for the first time.
func (a *agent) join(c *cluster, extra []string, addr string) *agent {
	c.t.Helper()
	token := strings.TrimSpace(c.must("join-token", "-q"))
	argv := append([]string{berthBin, "agent", "--join", strings.Join(c.serverAddrs(), ","), "--token", token,
		"--name", a.name, "--data-dir", a.dir, "--containerd-namespace", c.ctdNS,
		"--listen", addr + ":0", "--gossip-addr", addr + ":7947", "--cpus", "2", "--memory", "4294967296", "--log-level", "debug"}, extra...)
	for i, arg := range argv {
		if arg == "--containerd-address" && i+1 < len(argv) {
			c.containerds[argv[i+1]] = true
		}
	}
	a.proc = spawn(c.t, "agent "+a.name, a.netns, argv...)
	a.waitOutput("joined as node", 60*time.Second)
	a.id = joinedRe.FindStringSubmatch(a.output())[1]
	return a
}

// restart starts the agent again after it was killed, and waits until it
// joined again.
func (a *agent) restart() {
	a.t.Helper()
	a.start()
	a.waitOutput("joined as node", 60*time.Second)
}

// berth runs the CLI in the hub against the cluster.
func (c *cluster) berth(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := append([]string{"--net=" + netnsPath(c.hub), "--", berthBin, "--config", c.configPath}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("berth %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// must runs the CLI or fails the test.
func (c *cluster) must(args ...string) string {
	c.t.Helper()
	out, err := c.berth(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// mustJSON runs the CLI with -o json and decodes its output into v.
func (c *cluster) mustJSON(v any, args ...string) {
	c.t.Helper()
	out := c.must(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("berth %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// writeFile writes name in the cluster's directory and returns its path.
func (c *cluster) writeFile(name, content string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// apply applies compose as app and fails the test if it is refused.
func (c *cluster) apply(app, compose string, flags ...string) {
	c.t.Helper()
	c.must(append([]string{"apply", "-p", app, "-f", c.writeFile(app+".yaml", compose)}, flags...)...)
}

// importImage loads the busybox test image into every node.
func (c *cluster) importImage() {
	c.t.Helper()
	c.must("image", "import", busyboxImage)
}

// sleepers is a service of n busybox sleepers that stop fast.
func sleepers(n int) string {
	return fmt.Sprintf(`services:
  web:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      replicas: %d
`, n)
}

// nodeLine is node's row of `berth node ls`, whose status column shows
// nodestate.Words: "ready", "not ready (TYPE: MESSAGE)", "unreachable",
// "down".
func (c *cluster) nodeLine(a *agent) string {
	c.t.Helper()
	for _, l := range strings.Split(c.must("node", "ls"), "\n") {
		if slices.Contains(strings.Fields(l), a.name) {
			return l
		}
	}
	c.t.Fatalf("node %s is not in berth node ls", a.name)
	return ""
}

// nodeStatus is node's status as `berth node ls -o json` has it.
func (c *cluster) nodeStatus(a *agent) string {
	c.t.Helper()
	var nodes []struct{ Name, Status string }
	c.mustJSON(&nodes, "node", "ls")
	for _, n := range nodes {
		if n.Name == a.name {
			return n.Status
		}
	}
	c.t.Fatalf("node %s is not in berth node ls", a.name)
	return ""
}
