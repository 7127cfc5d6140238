package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsPath is where `ip netns` keeps namespace ns.
func netnsPath(ns string) string { return filepath.Join("/run/netns", ns) }

// ip runs an ip(8) command or fails the test.
func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetNS makes a network namespace with its loopback up, deleted when
// the test ends (after every process in it, since cleanups run last
// first).
func newNetNS(t testing.TB, ns string) {
	t.Helper()
	exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
	ip(t, "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("deleting netns %s: %v: %s", ns, err, out)
		}
	})
	ip(t, "-n", ns, "link", "set", "lo", "up")
}

// link connects namespaces a and b with a veth pair whose ends are named
// ifA and ifB, addressed addrA and addrB (CIDR).
func link(t testing.TB, a, ifA, addrA, b, ifB, addrB string) {
	t.Helper()
	ip(t, "-n", a, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b)
	ip(t, "-n", a, "addr", "add", addrA, "dev", ifA)
	ip(t, "-n", b, "addr", "add", addrB, "dev", ifB)
	ip(t, "-n", a, "link", "set", ifA, "up")
	ip(t, "-n", b, "link", "set", ifB, "up")
}

// runInNetNS runs fn on an OS thread that has joined namespace ns (for ""
// fn simply runs): what fn execs (CNI plugins, iptables) runs there too.
// The thread is thrown away afterwards rather than moved back.
func runInNetNS(ns string, fn func()) error {
	if ns == "" {
		fn()
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open(netnsPath(ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("joining netns %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// TestCutOffNodeIsUnreachableNotDown cuts a node off the control plane
// while it stays alive and in touch with the other node. Three network
// namespaces: the server's, alpha's and beta's, each pair linked; every
// process is reached at an address on its own loopback. Downing the
// server–alpha link loses alpha's session, but gossip still reaches alpha
// through beta: alpha is unreachable, and its task is not replaced until
// the grace ends. When the link comes back, alpha stops the task that was
// replaced and nothing runs twice.
func TestCutOffNodeIsUnreachableNotDown(t *testing.T) {
	prefix := fmt.Sprintf("berth-e2e-%d-", os.Getpid())
	srv, alpha, beta := prefix+"s", prefix+"a", prefix+"b"
	for _, ns := range []string{srv, alpha, beta} {
		newNetNS(t, ns)
	}
	link(t, srv, "to-alpha", "10.251.1.1/30", alpha, "to-server", "10.251.1.2/30")
	link(t, srv, "to-beta", "10.251.2.1/30", beta, "to-server", "10.251.2.2/30")
	link(t, alpha, "to-beta", "10.251.3.1/30", beta, "to-alpha", "10.251.3.2/30")
	for ns, addr := range map[string]string{srv: "10.251.0.1/32", alpha: "10.251.0.2/32", beta: "10.251.0.3/32"} {
		ip(t, "-n", ns, "addr", "add", addr, "dev", "lo")
	}
	for _, r := range [][]string{
		{srv, "10.251.0.2", "10.251.1.2"}, {srv, "10.251.0.3", "10.251.2.2"},
		{alpha, "10.251.0.1", "10.251.1.1"}, {alpha, "10.251.0.3", "10.251.3.2"},
		{beta, "10.251.0.1", "10.251.2.1"}, {beta, "10.251.0.2", "10.251.3.1"},
	} {
		ip(t, "-n", r[0], "route", "add", r[1], "via", r[2])
	}

	const grace = "6s"
	c := newCluster(t, inNetNS(srv, "10.251.0.1"), withServerArgs("--node-down-grace", grace, "--heartbeat-period", "500ms"))
	c.startAgentIn(alpha, "alpha", "--listen", "10.251.0.2:0", "--gossip-addr", "10.251.0.2:7947")
	c.startAgentIn(beta, "beta", "--listen", "10.251.0.3:0", "--gossip-addr", "10.251.0.3:7947")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "cut")
	cut := c.taskOn(c.waitRunning("cut/sleeper", 2, 60*time.Second), "alpha")

	ip(t, "-n", srv, "link", "set", "to-alpha", "down")
	eventually(t, 30*time.Second, func() (bool, string) {
		n := c.node("alpha")
		return n.Status == "unreachable" && strings.Contains(n.Message, "gossip still sees the node alive"),
			fmt.Sprintf("alpha is %s (%q), want unreachable and alive to gossip", n.Status, n.Message)
	})
	// Until the grace ends, alpha's task stays where it is and nothing
	// replaces it: a snapshot of the tasks taken while alpha was still
	// unreachable after it must hold the same two.
	for {
		tasks := c.ps("cut/sleeper")
		n := c.node("alpha")
		if n.Status != "unreachable" {
			break
		}
		if len(tasks) != 2 || !hasTask(tasks, cut.ID) {
			t.Fatalf("while alpha is unreachable (%q), the tasks are %+v: want the same two", n.Message, tasks)
		}
	}
	if n := c.node("alpha"); n.Status != "down" || !strings.Contains(n.Message, "no contact for "+grace) {
		t.Fatalf("after unreachable, alpha is %s (%q), want down after the grace", n.Status, n.Message)
	}
	c.waitRunningOn("cut/sleeper", "beta", 2, 30*time.Second)

	ip(t, "-n", srv, "link", "set", "to-alpha", "up")
	alphaID := nodeID(t, filepath.Join(c.dir, "agent-alpha"))
	eventually(t, 60*time.Second, func() (bool, string) {
		n := c.node("alpha")
		running := len(runningPids(t, alphaID))
		return n.Status == "ready" && running == 0, fmt.Sprintf("alpha is %s with %d containers running; want ready with none", n.Status, running)
	})
	for _, tk := range c.waitRunning("cut/sleeper", 2, 30*time.Second) {
		if tk.Node != "beta" {
			t.Fatalf("after alpha came back, a task runs on %s", tk.Node)
		}
	}
	c.mustBerth("delete", "cut")
}

func hasTask(tasks []task, id string) bool {
	for _, tk := range tasks {
		if tk.ID == id {
			return true
		}
	}
	return false
}

// nodeInfo is one row of `berth node ls -o json`.
type nodeInfo struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// node reads the node called name.
func (c *cluster) node(name string) nodeInfo {
	c.t.Helper()
	var nodes []nodeInfo
	out := c.mustBerth("node", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		c.t.Fatalf("berth node ls -o json: %v\n%s", err, out)
	}
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	c.t.Fatalf("no node %s in %s", name, out)
	return nodeInfo{}
}
