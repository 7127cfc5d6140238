package e2e

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const webCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    deploy:
      replicas: %d
  front:
    image: localhost/busybox:latest
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports:
      - "%d:80"
`

// TestComposeAppAcrossTwoNodes is the core slice: a Compose app spreads
// over two agents, answers on its published port, scales, and leaves
// nothing behind when deleted.
func TestComposeAppAcrossTwoNodes(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.startAgent("beta")
	c.importImage()
	port := freePort(t)
	file := c.writeFile("app/compose.yaml", fmt.Sprintf(webCompose, 4, port))

	out := c.mustBerth("apply", "-f", file, "-p", "shop")
	if !strings.Contains(out, "service web created") || !strings.Contains(out, "service front created") {
		t.Fatalf("apply output:\n%s", out)
	}
	tasks := c.waitRunning("shop/web", 4, 90*time.Second)
	perNode := map[string]int{}
	for _, tk := range tasks {
		perNode[tk.Node]++
	}
	if perNode["alpha"] != 2 || perNode["beta"] != 2 {
		t.Fatalf("4 replicas over two nodes: got %v, want 2 on each", perNode)
	}
	c.waitRunning("shop/front", 1, 60*time.Second)
	eventually(t, 30*time.Second, func() (bool, string) {
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
		return err == nil && strings.Contains(body, "hello from berth"), fmt.Sprintf("published port: %v %q", err, body)
	})

	// Applying the same file again changes nothing.
	out = c.mustBerth("apply", "-f", file, "-p", "shop")
	if !strings.Contains(out, "service web unchanged") || !strings.Contains(out, "service front unchanged") {
		t.Fatalf("re-apply output:\n%s", out)
	}
	before := ids(tasks)

	// Scaling up keeps the running tasks and adds two.
	c.writeFile("app/compose.yaml", fmt.Sprintf(webCompose, 6, port))
	c.mustBerth("apply", "-f", file, "-p", "shop")
	scaled := c.waitRunning("shop/web", 6, 90*time.Second)
	kept := 0
	for id := range ids(scaled) {
		if before[id] {
			kept++
		}
	}
	if kept != 4 {
		t.Fatalf("scaling replaced running tasks: %d of 4 kept", kept)
	}

	// Delete removes every container, snapshot and CNI allocation.
	c.mustBerth("delete", "shop")
	eventually(t, 60*time.Second, func() (bool, string) {
		left := c.ps("shop")
		return len(left) == 0, fmt.Sprintf("tasks left after delete: %+v", left)
	})
	for name := range c.agents {
		dataDir := filepath.Join(c.dir, "agent-"+name)
		eventually(t, 60*time.Second, func() (bool, string) {
			n := countContainers(t, nodeID(t, dataDir))
			allocs := ipAllocations(t, dataDir)
			return n == 0 && len(allocs) == 0, fmt.Sprintf("node %s keeps %d containers and IP allocations %v", name, n, allocs)
		})
	}
	if n := activeSnapshots(t); n != 0 {
		t.Fatalf("%d container snapshots are left after delete", n)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		_, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
		return err != nil, "the published port still answers after delete"
	})
}

func ids(tasks []task) map[string]bool {
	out := map[string]bool{}
	for _, t := range tasks {
		out[t.ID] = true
	}
	return out
}

func httpGet(url string) (string, error) {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// ipAllocations lists the addresses host-local IPAM holds for a node.
func ipAllocations(t testing.TB, dataDir string) []string {
	var out []string
	filepath.Walk(filepath.Join(dataDir, "network"), func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		base := info.Name()
		if strings.Count(base, ".") == 3 && filepath.Base(filepath.Dir(filepath.Dir(path))) == "ipam" {
			out = append(out, base)
		}
		return nil
	})
	return out
}

// TestWrongJoinTokenIsRefused checks that an agent with a token of another
// secret, or a malformed token, cannot join.
func TestWrongJoinTokenIsRefused(t *testing.T) {
	c := newCluster(t)
	good := c.joinToken()
	// Same cluster CA digest and id, wrong secret.
	bad := good[:len(good)-5] + "00000"
	tests := []struct {
		name, token, want string
	}{
		{"wrong secret", bad, "join token is not valid"},
		{"malformed", "BERTH-1-nonsense", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(c.dir, "intruder-"+strings.ReplaceAll(tt.name, " ", "-"))
			p := startProc(t, "intruder", nil, berthBin, "agent", "--join", c.addr, "--token", tt.token, "--name", "intruder",
				"--data-dir", dataDir, "--listen", "127.0.0.1:0", "--containerd-namespace", namespace)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("agent with a %s token still runs:\n%s", tt.name, p.out.String())
			}
			if p.err == nil || !strings.Contains(p.out.String(), tt.want) {
				t.Fatalf("agent with a %s token: exit %v, output:\n%s", tt.name, p.err, p.out.String())
			}
			if _, err := os.Stat(filepath.Join(dataDir, "pki", "node.crt")); err == nil {
				t.Fatalf("a refused agent got a certificate")
			}
		})
	}
	out := c.mustBerth("node", "ls", "-o", "json")
	if strings.Contains(out, "intruder") {
		t.Fatalf("refused agent is listed as a node:\n%s", out)
	}
}

// TestBadComposeIsRejected checks that invalid files are refused with the
// file, service and field, and that nothing is written.
func TestBadComposeIsRejected(t *testing.T) {
	c := newCluster(t)
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "services:\n  web:\n    image: localhost/busybox:latest\n    imagee: typo\n", []string{"compose.yaml", "web", "imagee"}},
		{"broken yaml", "services:\n  web:\n    image: [localhost/busybox\n", []string{"compose.yaml"}},
		{"invalid port", "services:\n  web:\n    image: localhost/busybox:latest\n    ports:\n      - \"70000:80\"\n", []string{"compose.yaml", "web", "port"}},
		{"undefined network", "services:\n  web:\n    image: localhost/busybox:latest\n    networks: [front]\n", []string{"compose.yaml:4", "web", "networks.front", "not defined"}},
		{"address outside its network", "services:\n  db:\n    image: localhost/busybox:latest\n    networks:\n      back:\n        ipv4_address: 10.98.0.5\nnetworks:\n  back:\n    ipam:\n      config:\n        - subnet: 10.99.0.0/24\n",
			[]string{"compose.yaml:6", "db", "networks.back.ipv4_address", "outside", "10.99.0.0/24"}},
		{"external network that does not exist", "services:\n  web:\n    image: localhost/busybox:latest\n    networks: [shared]\nnetworks:\n  shared:\n    external: true\n", []string{"shared", "berth network create"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := c.writeFile(strings.ReplaceAll(tt.name, " ", "-")+"/compose.yaml", tt.content)
			out, errOut, err := c.berth("apply", "-f", file, "-p", "bad")
			if err == nil {
				t.Fatalf("apply of a file with %s succeeded:\n%s", tt.name, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("error output lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
	if out := c.mustBerth("get", "apps", "-o", "json"); strings.Contains(out, "bad") {
		t.Fatalf("a rejected apply wrote an app:\n%s", out)
	}
}

const sleepCompose = `
services:
  sleeper:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      replicas: 2
`

// TestServerRestartKeepsApps restarts the server on the same data dir: the
// apps are still there and their containers were never restarted.
func TestServerRestartKeepsApps(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "keep")
	before := ids(c.waitRunning("keep/sleeper", 2, 60*time.Second))

	c.server.stop()
	c.startServer()
	out := c.mustBerth("get", "apps", "-o", "json")
	if !strings.Contains(out, `"keep"`) {
		t.Fatalf("after a restart the server lost the app:\n%s", out)
	}
	after := c.waitRunning("keep/sleeper", 2, 60*time.Second)
	for id := range ids(after) {
		if !before[id] {
			t.Fatalf("task %s is new after the server restart; tasks were replaced", id)
		}
	}
	c.mustBerth("delete", "keep")
}

// TestExternalEtcd runs the server on an external etcd (Debian's etcd
// binary) instead of the embedded one.
func TestExternalEtcd(t *testing.T) {
	etcdBin := "/usr/bin/etcd"
	if _, err := os.Stat(etcdBin); err != nil {
		t.Fatalf("etcd is not installed (hack/setup-host.sh installs etcd-server): %v", err)
	}
	dir := t.TempDir()
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	e := startProc(t, "etcd", []string{"ETCD_UNSUPPORTED_ARCH="}, etcdBin,
		"--name", "e2e", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer)
	e.waitOutput(t, "ready to serve client requests", 60*time.Second)

	c := newCluster(t, withEtcd(client))
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "ext")
	c.waitRunning("ext/sleeper", 2, 60*time.Second)
	out := c.mustBerth("version")
	if !strings.Contains(out, client) {
		t.Logf("version output does not name the etcd endpoint:\n%s", out)
	}
	c.mustBerth("delete", "ext")
}

const placedCompose = `
services:
  eu:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      replicas: 2
      placement:
        constraints: ["node.labels.zone==eu"]
  mars:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      placement:
        constraints: ["node.labels.zone==mars"]
`

// TestPlacementConstraints places by node label, and a task that fits
// nowhere stays pending with the reason in `berth ps`.
func TestPlacementConstraints(t *testing.T) {
	c := newCluster(t)
	c.startAgent("eu-1", "--label", "zone=eu")
	c.startAgent("us-1", "--label", "zone=us")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", placedCompose), "-p", "geo")
	for _, tk := range c.waitRunning("geo/eu", 2, 60*time.Second) {
		if tk.Node != "eu-1" {
			t.Fatalf("task %s of geo/eu runs on %s, want eu-1", tk.ID, tk.Node)
		}
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		tasks := c.ps("geo/mars")
		return len(tasks) == 1 && tasks[0].State == "pending" && strings.Contains(tasks[0].Message, "constraint node.labels.zone==mars on 2 nodes"),
			fmt.Sprintf("geo/mars: want one pending task explaining the constraint, have %+v", tasks)
	})
	table := c.mustBerth("ps", "geo/mars")
	if !strings.Contains(table, "no suitable node") {
		t.Fatalf("berth ps does not show why the task waits:\n%s", table)
	}
	c.mustBerth("delete", "geo")
}

// TestAgentRestartAdoptsContainers stops an agent: its containers keep
// running, and when it comes back it adopts them instead of starting new
// ones.
func TestAgentRestartAdoptsContainers(t *testing.T) {
	c := newCluster(t)
	agent := c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "adopt")
	before := ids(c.waitRunning("adopt/sleeper", 2, 60*time.Second))

	dataDir := filepath.Join(c.dir, "agent-alpha")
	pids := runningPids(t, nodeID(t, dataDir))
	agent.stop()
	if got := runningPids(t, nodeID(t, dataDir)); !maps.Equal(got, pids) || len(got) != 2 {
		t.Fatalf("after the agent stopped, running containers (id: pid) = %v, want %v", got, pids)
	}
	c.startAgent("alpha")
	after := c.waitRunning("adopt/sleeper", 2, 60*time.Second)
	for id := range ids(after) {
		if !before[id] {
			t.Fatalf("task %s is new after the agent restart; the containers were not adopted", id)
		}
	}
	if got := runningPids(t, nodeID(t, dataDir)); !maps.Equal(got, pids) {
		t.Fatalf("after the agent came back, running containers (id: pid) = %v, want the same processes %v", got, pids)
	}
	c.mustBerth("delete", "adopt")
}

const chattyCompose = `
services:
  chatty:
    image: localhost/busybox:latest
    command: ["sh", "-c", "echo first line; echo second line from $$HOSTNAME_HINT; sleep 3600"]
    environment:
      HOSTNAME_HINT: berth
`

// TestLogsAndImages reads a service's output through the control plane,
// and lists the images each node holds.
func TestLogsAndImages(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	out := c.mustBerth("image", "ls", "-o", "json")
	if !strings.Contains(out, "localhost/busybox:latest") {
		t.Fatalf("image ls does not list the imported image:\n%s", out)
	}
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", chattyCompose), "-p", "talk")
	c.waitRunning("talk/chatty", 1, 60*time.Second)
	eventually(t, 30*time.Second, func() (bool, string) {
		out, errOut, err := c.berth("logs", "talk/chatty", "--tail", "1")
		return err == nil && strings.Contains(out, "second line from berth") && !strings.Contains(out, "first line"),
			fmt.Sprintf("logs --tail 1: %v\n%s%s", err, out, errOut)
	})
	c.mustBerth("delete", "talk")
}

// TestKilledContainerIsReplaced kills a container's process: the task
// fails with its exit code and a new task runs in its slot at once.
func TestKilledContainerIsReplaced(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "heal")
	before := c.waitRunning("heal/sleeper", 2, 60*time.Second)
	victim := before[0]
	c.killTask(victim)
	after := c.waitRunning("heal/sleeper", 2, 30*time.Second)
	replaced := false
	for _, tk := range after {
		if tk.Slot == victim.Slot && tk.ID != victim.ID {
			replaced = true
		}
	}
	if !replaced {
		t.Fatalf("slot %d still runs task %s after its process was killed: %+v", victim.Slot, victim.ID, after)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		for _, tk := range c.ps("heal/sleeper", "-a") {
			if tk.ID == victim.ID {
				return tk.State == "failed" && strings.Contains(tk.Error, "137"), fmt.Sprintf("killed task: %+v", tk)
			}
		}
		return false, "the killed task is gone from ps -a"
	})
	c.mustBerth("delete", "heal")
}

const fragileCompose = `
services:
  fragile:
    image: localhost/busybox:latest
    command: ["sh", "-c", "touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 200ms
      retries: 2
`

// TestUnhealthyContainerIsReplaced runs a container whose health check
// passes, then fails: ps shows it healthy, then the task fails as
// unhealthy and a new one takes its slot.
func TestUnhealthyContainerIsReplaced(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", fragileCompose), "-p", "fragile")
	var first task
	eventually(t, 30*time.Second, func() (bool, string) {
		tasks := c.ps("fragile/fragile")
		if len(tasks) == 1 && tasks[0].State == "running" && tasks[0].Health == "healthy" {
			first = tasks[0]
			return true, ""
		}
		return false, fmt.Sprintf("want one running healthy task, have %+v", tasks)
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		var failed, replaced bool
		all := c.ps("fragile/fragile", "-a")
		for _, tk := range all {
			if tk.ID == first.ID {
				failed = tk.State == "failed" && tk.Health == "unhealthy" && strings.Contains(tk.Error, "unhealthy")
			} else if tk.Slot == first.Slot && tk.State == "running" {
				replaced = true
			}
		}
		return failed && replaced, fmt.Sprintf("want %s failed as unhealthy and a running replacement, have %+v", first.ID, all)
	})
	c.mustBerth("delete", "fragile")
}

// TestDeadNodeTasksRunElsewhere freezes an agent, as a dead or hung
// machine would be (its connections open, nothing answering): gossip
// declares its node down (the grace is far longer than the test), its task
// runs on the other node; when the agent comes back, it stops the
// container that was replaced, so nothing runs twice.
func TestDeadNodeTasksRunElsewhere(t *testing.T) {
	c := newCluster(t, withServerArgs("--node-down-grace", "10m"))
	c.startAgent("alpha")
	beta := c.startAgent("beta")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "survive")
	c.taskOn(c.waitRunning("survive/sleeper", 2, 60*time.Second), "beta")
	betaDir := filepath.Join(c.dir, "agent-beta")
	beta.freeze()
	c.waitRunningOn("survive/sleeper", "alpha", 2, 30*time.Second)
	if out := c.mustBerth("node", "ls"); !strings.Contains(out, "down") || !strings.Contains(out, "gossip") {
		t.Fatalf("beta is not shown down by gossip:\n%s", out)
	}
	if n := len(runningPids(t, nodeID(t, betaDir))); n != 1 {
		t.Fatalf("beta's container should still run while its agent is away; %d run", n)
	}
	beta.kill()

	c.startAgent("beta")
	eventually(t, 30*time.Second, func() (bool, string) {
		n := len(runningPids(t, nodeID(t, betaDir)))
		return n == 0, fmt.Sprintf("%d containers still run on the returned node", n)
	})
	tasks := c.waitRunning("survive/sleeper", 2, 30*time.Second)
	for _, tk := range tasks {
		if tk.Node != "alpha" {
			t.Fatalf("after beta returned, a task runs on %s: %+v", tk.Node, tasks)
		}
	}
	c.mustBerth("delete", "survive")
}
