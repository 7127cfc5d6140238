package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/version"
)

// buildBerth builds cmd/berth of this repository as version v into dir,
// as make build does, and returns its path.
func buildBerth(t *testing.T, dir, v string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "berth-"+v)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/berthproject/berth/api/version.Version="+v, "-o", bin, "./cmd/berth")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building berth %s: %v\n%s", v, err, out)
	}
	return bin
}

// clientVersion is the version the binary under test says it is.
func clientVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version", "--config", filepath.Join(t.TempDir(), "none")).Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s version printed no version:\n%s", bin, out)
	return ""
}

// nextMinors returns the versions one and three minor versions after v
// (from v0.0 when v is not semver, as a plain go build says "dev").
func nextMinors(v string) (next, far string) {
	major, minor := 0, 0
	if mm := version.MajorMinor(v); mm != "" {
		fmt.Sscanf(mm, "v%d.%d", &major, &minor)
	}
	return fmt.Sprintf("v%d.%d.0", major, minor+1), fmt.Sprintf("v%d.%d.0", major, minor+3)
}

// restartServerWith stops the cluster's server and starts it again with
// bin, on the same data dir and address.
func (c *cluster) restartServerWith(bin string) {
	c.t.Helper()
	c.server.stop()
	args := append([]string{"server", "--config", c.configPath, "--data-dir", filepath.Join(c.dir, "server"), "--listen", c.addr, "--log-level", "debug",
		"--container-range", c.containerRange, "--network-range", c.networkRange}, c.serverArgs...)
	c.server = startProc(c.t, "server ("+filepath.Base(bin)+")", nil, bin, args...)
	c.server.waitOutput(c.t, "Join a node with:", 120*time.Second)
}

// startAgentWith starts agent name with bin, as startAgent does, and waits
// until it printed want. A restart reuses the agent's data dir.
func (c *cluster) startAgentWith(bin, name, want string) *proc {
	c.t.Helper()
	dataDir := filepath.Join(c.dir, "agent-"+name)
	if _, known := c.agents[name]; !known {
		c.t.Cleanup(func() { cleanupNode(c.t, name, dataDir) })
	}
	p := startProc(c.t, "agent "+name+" ("+filepath.Base(bin)+")", nil, bin, "agent", "--join", c.addr, "--token", c.joinToken(), "--name", name,
		"--data-dir", dataDir, "--containerd-namespace", namespace, "--cpus", "2", "--memory", "4294967296", "--log-level", "debug", "--listen", "127.0.0.1:0")
	p.waitOutput(c.t, want, 120*time.Second)
	c.agents[name] = p
	return p
}

// nodeVersions is NAME: VERSION from berth node ls -o json.
func (c *cluster) nodeVersions() map[string]string {
	c.t.Helper()
	var rows []struct{ Name, Version, Status string }
	out := c.mustBerth("node", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		c.t.Fatalf("node ls -o json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Name] = r.Version + " " + r.Status
	}
	return got
}

// TestRollingUpgrade restarts every agent and then the server with a
// binary of the next minor version, one at a time, while a service runs:
// the same containers (same processes) keep running throughout, no task
// is replaced, and node ls shows the new version. An agent three minor
// versions ahead of the upgraded server is refused, naming both versions,
// and says so in its log.
func TestRollingUpgrade(t *testing.T) {
	base := clientVersion(t, berthBin)
	next, far := nextMinors(base)
	dir := t.TempDir()
	nextBin := buildBerth(t, dir, next)
	farBin := buildBerth(t, dir, far)

	c := newCluster(t)
	nodes := []string{"up-a", "up-b"}
	for _, n := range nodes {
		c.startAgent(n)
	}
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "upgrade")
	before := ids(c.waitRunning("upgrade/sleeper", 2, 120*time.Second))
	pids := map[string]map[string]uint32{}
	for _, n := range nodes {
		pids[n] = runningPids(t, nodeID(t, filepath.Join(c.dir, "agent-"+n)))
	}

	// same checks that the tasks and their processes are the ones from
	// before the upgrade began.
	same := func(step string) {
		t.Helper()
		after := c.waitRunning("upgrade/sleeper", 2, 120*time.Second)
		if got := ids(after); !maps.Equal(got, before) {
			t.Fatalf("%s: tasks %v, want the same tasks as before the upgrade %v", step, got, before)
		}
		for _, n := range nodes {
			if got := runningPids(t, nodeID(t, filepath.Join(c.dir, "agent-"+n))); !maps.Equal(got, pids[n]) {
				t.Fatalf("%s: containers on %s (id: pid) = %v, want the same processes %v", step, n, got, pids[n])
			}
		}
	}

	for _, n := range nodes {
		c.agents[n].stop()
		c.startAgentWith(nextBin, n, "joined as node")
		same("after upgrading agent " + n + " to " + next)
	}
	c.restartServerWith(nextBin)
	eventually(t, 120*time.Second, func() (bool, string) {
		got := c.nodeVersions()
		want := map[string]string{"up-a": next + " ready", "up-b": next + " ready"}
		return maps.Equal(got, want), fmt.Sprintf("node ls: %v, want %v", got, want)
	})
	same("after upgrading the server to " + next)
	if out := c.mustBerth("version"); strings.Count(out, next) != 1 || !strings.Contains(out, base) {
		t.Fatalf("berth version (client %s, server %s):\n%s", base, next, out)
	}

	// Three minors ahead of the server: refused, in the agent's log, and
	// the agent keeps trying (it does not exit).
	p := c.startAgentWith(farBin, "up-far", "more than 1 minor version apart")
	for _, want := range []string{"agent " + far, "server " + next, "upgrade the server to " + version.MajorMinor(far)} {
		if !strings.Contains(p.out.String(), want) {
			t.Fatalf("the refused agent's log does not say %q:\n%s", want, p.out.String())
		}
	}
	select {
	case <-p.done:
		t.Fatalf("the refused agent exited (%v); it should keep trying", p.err)
	default:
	}
	if got := c.nodeVersions()["up-far"]; strings.HasSuffix(got, " ready") {
		t.Fatalf("the refused agent's node is %q, want it not ready", got)
	}
	p.stop()
	same("after the refused agent")
	c.mustBerth("delete", "upgrade")
}
