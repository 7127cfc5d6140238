// Package e2e tests the built berth binary end to end: real servers and
// agents as processes, real containerd, runc, CNI plugins and etcd, on
// loopback addresses only.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/build"
	ctdruntime "github.com/berthproject/berth/agent/runtime/containerd"
	"github.com/berthproject/berth/internal/containerdtest"
	"github.com/berthproject/berth/internal/testbin"
	containerd "github.com/containerd/containerd/v2/client"
)

// Paths of the binary and the test image, built by TestMain when missing.
var (
	berthBin     string
	busyboxImage string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipped: these tests run containers and need root (make test runs them as root)")
		return 0
	}
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	if berthBin, busyboxImage, err = testbin.Prepare(root); err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	namespace = fmt.Sprintf("berth-e2e-%d", os.Getpid())
	code := m.Run()
	client, err := containerd.New(ctdruntime.DefaultAddress)
	if err != nil {
		fmt.Println("e2e: cleanup:", err)
		return 1
	}
	defer client.Close()
	for _, ns := range []string{namespace, build.HistoryNamespace(namespace)} {
		if err := containerdtest.CleanupNamespace(client, ns); err != nil {
			fmt.Println("e2e: cleanup:", err)
			return 1
		}
		// Every container of the namespace is gone, but containerd 1.6
		// sometimes leaves the shim of one running, with nothing under
		// it; the run must not leave processes behind.
		if n, err := killShims(ns); err != nil {
			fmt.Println("e2e: cleanup:", err)
			return 1
		} else if n > 0 {
			fmt.Printf("e2e: cleanup: stopped %d containerd shims of namespace %s that outlived their containers\n", n, ns)
		}
	}
	return code
}

// killShims kills the containerd shims of namespace ns, which must hold
// no container any more, and returns how many it found.
func killShims(ns string) (int, error) {
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") || !slices.Contains(args, ns) ||
			slices.Index(args, ns) == 0 || args[slices.Index(args, ns)-1] != "-namespace" {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			n++
		}
	}
	return n, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a berth (or etcd) process the test started.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
	// frozen: stopped with SIGSTOP (freeze), so it takes no signal but
	// SIGKILL.
	frozen bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.out.String())
		}
	})
	return p
}

// stop ends the process: SIGTERM, then SIGKILL if it lingers.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	if p.frozen {
		p.kill()
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// freeze stops the process with SIGSTOP: its connections stay open but
// nothing answers, as when its machine dies or hangs (a killed process's
// kernel would close them at once). Only kill ends it afterwards.
func (p *proc) freeze() {
	p.frozen = true
	p.cmd.Process.Signal(syscall.SIGSTOP)
}

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitOutput waits until the process printed want, or fails.
func (p *proc) waitOutput(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, want, p.out.String())
		default:
		}
		return strings.Contains(p.out.String(), want), fmt.Sprintf("%s has not printed %q", p.name, want)
	})
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		timer := time.NewTimer(wait)
		<-timer.C
		wait = min(wait*2, 500*time.Millisecond)
	}
}

// cluster is a server with its agents.
type cluster struct {
	t          testing.TB
	dir        string
	configPath string
	addr       string
	server     *proc
	agents     map[string]*proc
	serverArgs []string
	// containerRange and networkRange are the address ranges of the
	// cluster's nodes and networks.
	containerRange, networkRange string
	// netns, when set, is the network namespace the server and the CLI
	// run in.
	netns string
}

type clusterOption func(*cluster)

// withServerArgs passes more flags to the server.
func withServerArgs(args ...string) clusterOption {
	return func(c *cluster) { c.serverArgs = append(c.serverArgs, args...) }
}

// withEtcd makes the server use an external etcd cluster.
func withEtcd(endpoints string) clusterOption {
	return func(c *cluster) { c.serverArgs = append(c.serverArgs, "--etcd-endpoints", endpoints) }
}

// inNetNS runs the server (listening on host) and the CLI in the network
// namespace ns, which the test made.
func inNetNS(ns, host string) clusterOption {
	return func(c *cluster) {
		c.netns = ns
		c.addr = net.JoinHostPort(host, "4242")
	}
}

// command returns the program and arguments that run berth with args in
// network namespace ns (or the test's own, for "").
func command(ns string, args ...string) (string, []string) {
	if ns == "" {
		return berthBin, args
	}
	return "nsenter", append([]string{"--net=" + netnsPath(ns), "--", berthBin}, args...)
}

// clusters counts the clusters made, so each gets its own container and
// network address ranges.
var clusters int

func newCluster(t testing.TB, opts ...clusterOption) *cluster {
	t.Helper()
	clusters++
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t:          t,
		dir:        dir,
		configPath: filepath.Join(dir, "config"),
		addr:       fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		agents:     map[string]*proc{},
		// Two clusters on one machine (a test's and a developer's) must
		// not route the same container addresses.
		containerRange: fmt.Sprintf("10.%d.0.0/16", 220+clusters%30),
		networkRange:   fmt.Sprintf("10.%d.0.0/16", 160+clusters%30),
	}
	for _, o := range opts {
		o(c)
	}
	// Registered first, so it runs last: after every process has stopped.
	t.Cleanup(func() { os.RemoveAll(dir) })
	c.startServer()
	return c
}

func (c *cluster) startServer() {
	c.t.Helper()
	args := append([]string{"server", "--config", c.configPath, "--data-dir", filepath.Join(c.dir, "server"), "--listen", c.addr, "--log-level", "debug",
		"--container-range", c.containerRange, "--network-range", c.networkRange}, c.serverArgs...)
	bin, args := command(c.netns, args...)
	c.server = startProc(c.t, "server", nil, bin, args...)
	c.server.waitOutput(c.t, "Join a node with:", 60*time.Second)
}

func (c *cluster) joinToken() string {
	c.t.Helper()
	out := c.mustBerth("join-token", "-q")
	return strings.TrimSpace(out)
}

// startAgent starts an agent named name and waits until it is ready.
// Cleanup removes every container it ran, and its network.
func (c *cluster) startAgent(name string, extra ...string) *proc {
	c.t.Helper()
	return c.startAgentIn("", name, append([]string{"--listen", "127.0.0.1:0"}, extra...)...)
}

// startAgentIn starts an agent in network namespace ns ("" for the
// test's own).
func (c *cluster) startAgentIn(ns, name string, extra ...string) *proc {
	c.t.Helper()
	dataDir := filepath.Join(c.dir, "agent-"+name)
	args := append([]string{"agent", "--join", c.addr, "--token", c.joinToken(), "--name", name,
		"--data-dir", dataDir, "--containerd-namespace", namespace, "--cpus", "2", "--memory", "4294967296", "--log-level", "debug"}, extra...)
	// Registered before the process, so it runs after the agent stopped.
	c.t.Cleanup(func() {
		if err := runInNetNS(ns, func() { cleanupNode(c.t, name, dataDir) }); err != nil {
			c.t.Errorf("cleanup of node %s: %v", name, err)
		}
	})
	bin, args := command(ns, args...)
	p := startProc(c.t, "agent "+name, nil, bin, args...)
	p.waitOutput(c.t, "joined as node", 60*time.Second)
	c.agents[name] = p
	return p
}

// berth runs the CLI against the cluster.
func (c *cluster) berth(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, args := command(c.netns, append([]string{"--config", c.configPath}, args...)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func (c *cluster) mustBerth(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.berth(args...)
	if err != nil {
		c.t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// task is one row of `berth ps -o json`.
type task struct {
	ID           string `json:"id"`
	App          string `json:"app"`
	Service      string `json:"service"`
	Slot         uint64 `json:"slot"`
	Node         string `json:"node"`
	State        string `json:"state"`
	Health       string `json:"health"`
	DesiredState string `json:"desiredState"`
	Error        string `json:"error"`
	Message      string `json:"message"`
}

func (c *cluster) ps(args ...string) []task {
	c.t.Helper()
	var tasks []task
	out := c.mustBerth(append(append([]string{"ps"}, args...), "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &tasks); err != nil {
		c.t.Fatalf("berth ps -o json: %v\n%s", err, out)
	}
	return tasks
}

// waitRunning waits until target has exactly n tasks, all running.
func (c *cluster) waitRunning(target string, n int, timeout time.Duration) []task {
	c.t.Helper()
	var tasks []task
	eventually(c.t, timeout, func() (bool, string) {
		tasks = c.ps(target)
		running := 0
		for _, t := range tasks {
			if t.State == "running" && t.DesiredState == "running" {
				running++
			}
		}
		return running == n && len(tasks) == n, fmt.Sprintf("%s: want %d running tasks, have %+v", target, n, tasks)
	})
	return tasks
}

// taskOn returns the task of tasks placed on node, or fails.
func (c *cluster) taskOn(tasks []task, node string) task {
	c.t.Helper()
	for _, tk := range tasks {
		if tk.Node == node {
			return tk
		}
	}
	c.t.Fatalf("no task landed on %s: %+v", node, tasks)
	return task{}
}

// waitRunningOn waits until n tasks of target run on node.
func (c *cluster) waitRunningOn(target, node string, n int, timeout time.Duration) {
	c.t.Helper()
	eventually(c.t, timeout, func() (bool, string) {
		tasks := c.ps(target)
		on := 0
		for _, tk := range tasks {
			if tk.Node == node && tk.State == "running" {
				on++
			}
		}
		return on == n, fmt.Sprintf("%s: want %d tasks running on %s, have %+v", target, n, node, tasks)
	})
}

// importImage loads the busybox test image into every node.
func (c *cluster) importImage() {
	c.t.Helper()
	c.mustBerth("image", "import", busyboxImage)
}

// writeFile writes a file in the cluster's directory and returns its path.
func (c *cluster) writeFile(name, content string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}
