package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentProc starts an agent named name with token and its own data
// directory dir, without waiting for it to join; cleanup removes what it
// ran.
func (c *cluster) agentProc(t *testing.T, name, dir, token string) *proc {
	t.Helper()
	dataDir := filepath.Join(c.dir, dir)
	t.Cleanup(func() { cleanupNode(t, name, dataDir) })
	return startProc(t, "agent "+dir, nil, berthBin, "agent", "--join", c.addr, "--token", token, "--name", name,
		"--data-dir", dataDir, "--listen", "127.0.0.1:0", "--containerd-namespace", namespace,
		"--cpus", "2", "--memory", "4294967296", "--log-level", "debug")
}

// refusedJoin waits for p to exit, refused with want in its output, and
// without a certificate in dir.
func (c *cluster) refusedJoin(t *testing.T, p *proc, dir, want string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still runs; want it refused (%q):\n%s", p.name, want, p.out.String())
	}
	if p.err == nil || !strings.Contains(p.out.String(), want) {
		t.Fatalf("%s: exit %v, want it refused saying %q:\n%s", p.name, p.err, want, p.out.String())
	}
	if _, err := os.Stat(filepath.Join(c.dir, dir, "pki", "node.crt")); err == nil {
		t.Fatalf("%s was refused but got a certificate", p.name)
	}
}

// nodeNames lists the names `berth node ls` shows, with their status.
func (c *cluster) nodeNames(t *testing.T) map[string]string {
	t.Helper()
	var nodes []nodeInfo
	out := c.mustBerth("node", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("berth node ls -o json: %v\n%s", err, out)
	}
	names := map[string]string{}
	for _, n := range nodes {
		names[n.Name] = n.Status
	}
	return names
}

// TestNodeNameStaysBoundUntilRemoved: a second agent joining with the name
// of a stopped node is refused (it used to take the node over); `berth
// node rm` frees the name and revokes the old agent's certificate, which
// is refused afterwards; a token made with --uses 1 admits one join.
func TestNodeNameStaysBoundUntilRemoved(t *testing.T) {
	c := newCluster(t)
	beta := c.startAgent("beta")
	beta.stop()
	eventually(t, 30*time.Second, func() (bool, string) {
		st := c.nodeNames(t)["beta"]
		return st != "" && st != "ready", "beta is " + st + " after its agent stopped"
	})

	impostor := c.agentProc(t, "beta", "agent-beta-again", c.joinToken())
	c.refusedJoin(t, impostor, "agent-beta-again", "berth node rm beta")

	out := c.mustBerth("node", "rm", "beta")
	if !strings.Contains(out, "beta removed: its name is free and its certificate") {
		t.Fatalf("berth node rm beta printed:\n%s", out)
	}
	if _, ok := c.nodeNames(t)["beta"]; ok {
		t.Fatalf("beta is still listed after node rm")
	}

	// The old agent, with its certificate, is refused.
	old := startProc(t, "agent beta (removed)", nil, berthBin, "agent", "--join", c.addr, "--name", "beta",
		"--data-dir", filepath.Join(c.dir, "agent-beta"), "--listen", "127.0.0.1:0", "--containerd-namespace", namespace, "--log-level", "debug")
	eventually(t, 60*time.Second, func() (bool, string) {
		return strings.Contains(old.out.String(), "refused this node's certificate: it was revoked"), "the removed node's agent does not say its certificate was refused as revoked"
	})
	old.stop()
	if st, ok := c.nodeNames(t)["beta"]; ok {
		t.Fatalf("the removed node's agent brought beta back (%s)", st)
	}

	// The name is free: a new agent joins with it.
	fresh := c.agentProc(t, "beta", "agent-beta-again", c.joinToken())
	fresh.waitOutput(t, "joined as node", 60*time.Second)
	fresh.stop()

	once := strings.TrimSpace(c.mustBerth("join-token", "--uses", "1", "-q"))
	first := c.agentProc(t, "delta", "agent-delta", once)
	first.waitOutput(t, "joined as node", 60*time.Second)
	first.stop()
	second := c.agentProc(t, "epsilon", "agent-epsilon", once)
	c.refusedJoin(t, second, "agent-epsilon", "join token used up (1 of 1 uses)")
}
