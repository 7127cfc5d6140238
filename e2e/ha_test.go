package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/clientconfig"
)

// haCluster is several servers on one three-member etcd cluster.
type haCluster struct {
	*cluster
	// servers are the server processes by address.
	servers map[string]*proc
	// started counts the servers started besides the first.
	started int
}

// startEtcdCluster starts three etcd members on loopback and returns their
// client URLs, comma-separated. The short election timeout lets etcd grant
// one-second leases, so a dead Berth leader is replaced within about one.
func startEtcdCluster(t testing.TB) string {
	t.Helper()
	etcdBin := "/usr/bin/etcd"
	if _, err := os.Stat(etcdBin); err != nil {
		t.Fatalf("etcd is not installed (hack/setup-host.sh installs etcd-server): %v", err)
	}
	dir := t.TempDir()
	var clients, peers, initial []string
	for i := range 3 {
		clients = append(clients, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
		peers = append(peers, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
	}
	var members []*proc
	for i := range 3 {
		name := fmt.Sprintf("m%d", i)
		members = append(members, startProc(t, "etcd "+name, []string{"ETCD_UNSUPPORTED_ARCH="}, etcdBin,
			"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "berth-e2e", "--heartbeat-interval", "50", "--election-timeout", "500"))
	}
	for _, m := range members {
		m.waitOutput(t, "ready to serve client requests", 60*time.Second)
	}
	return strings.Join(clients, ",")
}

// newHACluster starts n servers on a fresh etcd cluster. Agents started
// afterwards, and the CLI, know every server.
func newHACluster(t testing.TB, n int) *haCluster {
	t.Helper()
	endpoints := startEtcdCluster(t)
	c := newCluster(t, withEtcd(endpoints), withServerArgs("--leader-lease", "1s"))
	h := &haCluster{cluster: c, servers: map[string]*proc{c.addr: c.server}}
	for i := 1; i < n; i++ {
		h.addServer()
	}
	h.knowServers()
	return h
}

// addServer starts one more server on the cluster's etcd and returns its
// address.
func (h *haCluster) addServer() string {
	h.t.Helper()
	h.started++
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(h.t))
	// Servers of one cluster share its key-encryption key: the first
	// server made it in its data dir, and the others read that file, as
	// an operator's copy of it would.
	args := append([]string{"server", "--config", filepath.Join(h.dir, fmt.Sprintf("config-%d", h.started)),
		"--data-dir", filepath.Join(h.dir, fmt.Sprintf("server-%d", h.started)), "--listen", addr, "--log-level", "debug",
		"--kek-file", filepath.Join(h.dir, "server", "key-encryption-key"),
		"--metrics-addr", "", "--container-range", h.containerRange, "--network-range", h.networkRange}, h.serverArgs...)
	p := startProc(h.t, fmt.Sprintf("server %d", h.started), nil, berthBin, args...)
	p.waitOutput(h.t, "Join a node with:", 60*time.Second)
	h.servers[addr] = p
	return addr
}

// knowServers points the agents started from now on, and the CLI, at every
// running server.
func (h *haCluster) knowServers() {
	h.t.Helper()
	var addrs []string
	for addr := range h.servers {
		addrs = append(addrs, addr)
	}
	h.addr = strings.Join(addrs, ",")
	cfg, err := clientconfig.Load(h.configPath)
	if err != nil {
		h.t.Fatal(err)
	}
	cfg.Server = h.addr
	if err := clientconfig.Save(h.configPath, cfg); err != nil {
		h.t.Fatal(err)
	}
}

// serverRow is one row of `berth get servers -o json`.
type serverRow struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
}

// leader returns the address of the server that leads, waiting for one
// that is not gone.
func (h *haCluster) leader(gone ...string) string {
	h.t.Helper()
	var addr string
	eventually(h.t, 30*time.Second, func() (bool, string) {
		out, errOut, err := h.berth("get", "servers", "-o", "json")
		if err != nil {
			return false, fmt.Sprintf("berth get servers: %v %s", err, errOut)
		}
		var rows []serverRow
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return false, fmt.Sprintf("berth get servers -o json: %v\n%s", err, out)
		}
		for _, r := range rows {
			if r.Leader && !slices.Contains(gone, r.Address) {
				addr = r.Address
				return true, ""
			}
		}
		return false, fmt.Sprintf("no leader among %+v (gone: %v)", rows, gone)
	})
	return addr
}

// killLeader kills the leading server as a crash would, and returns how
// long until another server led.
func (h *haCluster) killLeader() time.Duration {
	h.t.Helper()
	old := h.leader()
	h.servers[old].kill()
	killed := time.Now()
	next := h.leader(old)
	took := time.Since(killed)
	h.t.Logf("killed leader %s; %s leads after %s", old, next, took.Round(time.Millisecond))
	delete(h.servers, old)
	return took
}

// allTasks returns every task of target, finished ones too, by id.
func (h *haCluster) allTasks(target string) map[string]task {
	h.t.Helper()
	out := map[string]task{}
	for _, tk := range h.ps(target, "-a") {
		out[tk.ID] = tk
	}
	return out
}

const haApplyCompose = `
services:
  many:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      replicas: 200
`

// TestLeaderKilledDuringApply kills the leader while the tasks of an
// apply of 200 are being created, placed and started: another server
// leads, every slot ends up with exactly one running task, no task failed
// or was replaced, and the tasks that ran before the kill still run.
func TestLeaderKilledDuringApply(t *testing.T) {
	h := newHACluster(t, 3)
	h.startAgent("alpha", "--cpus", "64", "--memory", "68719476736")
	h.startAgent("beta", "--cpus", "64", "--memory", "68719476736")
	h.importImage()
	h.mustBerth("apply", "-f", h.writeFile("compose.yaml", haApplyCompose), "-p", "ha")
	// Kill once some tasks run and many are still to come.
	var before map[string]task
	eventually(t, 40*time.Second, func() (bool, string) {
		before = h.allTasks("ha/many")
		n := runningCount(slices.Collect(maps.Values(before)))
		return n >= 20, fmt.Sprintf("%d of 200 tasks run: %s", n, stateCounts(before))
	})
	running := map[string]bool{}
	for id, tk := range before {
		if tk.State == "running" {
			running[id] = true
		}
	}
	if len(running) == 200 {
		t.Logf("every task already ran before the leader was killed")
	}
	h.killLeader()

	tasks := h.waitRunning("ha/many", 200, 180*time.Second)
	slots := map[uint64]string{}
	for _, tk := range tasks {
		if other, ok := slots[tk.Slot]; ok {
			t.Fatalf("slot %d runs twice: tasks %s and %s", tk.Slot, other, tk.ID)
		}
		slots[tk.Slot] = tk.ID
	}
	all := h.allTasks("ha/many")
	if len(all) != 200 {
		t.Fatalf("%d tasks exist for 200 slots: a task was lost and replaced, or placed twice: %+v", len(all), slices.Collect(maps.Values(all)))
	}
	for id := range running {
		if tk, ok := all[id]; !ok || tk.State != "running" {
			t.Fatalf("task %s ran before the leader was killed and now is %+v", id, tk)
		}
	}
	h.mustBerth("delete", "ha")
}

// haRolloutCompose updates one task at a time, slowly enough that the
// leader dies in the middle.
const haRolloutCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    environment:
      VERSION: "%d"
    stop_grace_period: 1s
    deploy:
      replicas: 6
      update_config:
        parallelism: 1
        delay: 1s
        monitor: 500ms
`

// TestLeaderKilledDuringRollingUpdate kills the leader in the middle of
// a rolling update: the new leader finishes it, each slot runs one task of
// the new version, and no task beyond the planned replacements exists.
func TestLeaderKilledDuringRollingUpdate(t *testing.T) {
	h := newHACluster(t, 3)
	h.startAgent("alpha")
	h.startAgent("beta")
	h.importImage()
	compose := h.writeFile("compose.yaml", fmt.Sprintf(haRolloutCompose, 1))
	h.mustBerth("apply", "-f", compose, "-p", "roll", "--wait", "--timeout", "120s")
	first := ids(h.waitRunning("roll/web", 6, 60*time.Second))

	h.writeFile("compose.yaml", fmt.Sprintf(haRolloutCompose, 2))
	h.mustBerth("apply", "-f", compose, "-p", "roll")
	eventually(t, 60*time.Second, func() (bool, string) {
		replaced := 0
		for _, tk := range h.ps("roll/web") {
			if !first[tk.ID] && tk.State == "running" {
				replaced++
			}
		}
		return replaced >= 2, fmt.Sprintf("%d tasks of the new version run", replaced)
	})
	h.killLeader()

	h.mustBerth("rollout", "status", "roll/web", "-w", "--timeout", "120s")
	tasks := h.waitRunning("roll/web", 6, 60*time.Second)
	for _, tk := range tasks {
		if first[tk.ID] {
			t.Fatalf("task %s of the first version still runs after the update finished", tk.ID)
		}
	}
	if all := h.allTasks("roll/web"); len(all) != 12 {
		t.Fatalf("%d tasks exist after updating 6: want 6 old and 6 new, no restarts or duplicates: %+v", len(all), slices.Collect(maps.Values(all)))
	}
	h.mustBerth("delete", "roll")
}

// stateCounts sums up tasks by state and message, for failure messages.
func stateCounts(tasks map[string]task) string {
	counts := map[string]int{}
	for _, tk := range tasks {
		counts[tk.State+" "+tk.Message+" "+tk.Error]++
	}
	return fmt.Sprint(counts)
}
