package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const spreadSixCompose = `
services:
  sleeper:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      replicas: 6
`

// nodeLsRow is one row of `berth node ls -o json`.
type nodeLsRow struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// nodeStatus is node name's STATUS as `berth node ls` shows it.
func (c *cluster) nodeStatus(name string) string {
	c.t.Helper()
	var rows []nodeLsRow
	out := c.mustBerth("node", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		c.t.Fatalf("berth node ls -o json: %v\n%s", err, out)
	}
	for _, r := range rows {
		if r.Name == name {
			return r.Status
		}
	}
	return ""
}

// TestForeignSubnetMakesNodeNotReady reproduces issue 16's stale bridge:
// before beta's agent starts, a bridge in its namespace holds an address
// of the container subnet the control plane gives beta. Beta is "not
// ready (network: ...)" with the reason, and a spread service runs all
// its tasks on alpha with none rejected on beta. Once the bridge is gone
// beta is ready again and takes tasks; restarted over what its earlier
// run left (its own overlay device, a namespace without a record), it
// comes back ready, its container kept.
func TestForeignSubnetMakesNodeNotReady(t *testing.T) {
	c := newNetCluster(t, "alpha")
	c.importImageFile(busyboxImage)

	// The cluster gives its nodes /24s of its container range in order:
	// alpha has the first, beta will have the second.
	rangeBase := strings.TrimSuffix(c.containerRange, ".0.0/16")
	subnet := rangeBase + ".1.0/24"
	ns, addr := c.newHost("beta"), fmt.Sprintf("%s%d", lanPrefix, firstNodeHost+c.lan)
	c.lan++
	c.plug(t, ns, addr)
	ip(t, "-n", ns, "route", "add", "10.252.0.0/16", "via", routerAddr)
	ip(t, "-n", ns, "link", "add", "br-stale", "type", "bridge")
	ip(t, "-n", ns, "addr", "add", rangeBase+".1.200/24", "dev", "br-stale")
	ip(t, "-n", ns, "link", "set", "br-stale", "up")
	c.startNode("beta", ns, addr)

	wantReason := "not ready (network: the node's container subnet " + subnet + " is held by interface br-stale"
	eventually(t, 60*time.Second, func() (bool, string) {
		st := c.nodeStatus("beta")
		return strings.HasPrefix(st, wantReason), fmt.Sprintf("beta's status %q, want %q...", st, wantReason)
	})
	if table := c.mustBerth("node", "ls"); !strings.Contains(table, wantReason) {
		t.Fatalf("berth node ls does not give beta's reason:\n%s", table)
	}
	if st := c.nodeStatus("alpha"); st != "ready" {
		t.Fatalf("alpha's status %q, want ready", st)
	}

	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", spreadSixCompose), "-p", "stale")
	for _, tk := range c.waitRunning("stale/sleeper", 6, 90*time.Second) {
		if tk.Node != "alpha" {
			t.Fatalf("task %s landed on %s, which is not ready", tk.ID, tk.Node)
		}
	}
	for _, tk := range c.ps("stale/sleeper", "-a") {
		if tk.Node == "beta" {
			t.Fatalf("a task reached beta, which is not ready: %+v", tk)
		}
	}

	ip(t, "-n", ns, "link", "del", "br-stale")
	eventually(t, 60*time.Second, func() (bool, string) {
		st := c.nodeStatus("beta")
		return st == "ready", fmt.Sprintf("beta's status %q after the bridge went, want ready", st)
	})
	var said []string
	for _, ev := range c.events() {
		if ev.Kind == "node" {
			said = append(said, ev.Message)
		}
	}
	all := strings.Join(said, "\n")
	if !strings.Contains(all, "node beta is not ready: network: the node's container subnet") || !strings.Contains(all, "node beta is ready again") {
		t.Fatalf("the node events do not tell beta's story:\n%s", all)
	}
	// New tasks land on beta again: a rebalance moves half the service.
	c.mustBerth("rebalance", "stale/sleeper", "--wait")
	c.waitRunningOn("stale/sleeper", "beta", 3, 90*time.Second)

	// An agent restarted over its own earlier run: the overlay device it
	// keeps across restarts, and a namespace of its prefix without a
	// record (with its veth in beta's namespace), are its own. It comes
	// back ready, its containers kept, the stale namespace gone.
	before := c.ps("stale/sleeper")
	c.agents["beta"].stop()
	stale := netnsNameOf("beta", "stale-leftover")
	ip(t, "netns", "add", stale)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", stale).Run() })
	ip(t, "link", "add", vethNameOf("stale-leftover", 0), "netns", ns, "type", "veth", "peer", "name", "eth0", "netns", stale)
	c.startAgentIn(ns, "beta", "--listen", addr+":0", "--gossip-addr", addr+":7946")
	eventually(t, 60*time.Second, func() (bool, string) {
		st := c.nodeStatus("beta")
		return st == "ready", fmt.Sprintf("beta's status %q after its restart, want ready", st)
	})
	if _, err := os.Stat(filepath.Join("/run/netns", stale)); !os.IsNotExist(err) {
		t.Errorf("the namespace %s beta's earlier run left is still there (%v)", stale, err)
	}
	after := c.waitRunning("stale/sleeper", 6, 60*time.Second)
	if got, want := ids(after), ids(before); len(got) != len(want) {
		t.Fatalf("tasks after beta's restart %v, want %v", got, want)
	} else {
		for id := range want {
			if !got[id] {
				t.Fatalf("task %s was replaced across beta's restart: %+v", id, after)
			}
		}
	}
	c.mustBerth("delete", "stale")
}

// netnsNameOf is the name agent node gives the network namespace of
// container id (agent/network's netnsPrefix).
func netnsNameOf(node, id string) string {
	sum := sha256.Sum256([]byte(node))
	return "berth-" + hex.EncodeToString(sum[:4]) + "-" + id
}

// vethNameOf is the name of the host-side veth of container id's network
// i (agent/network's hostVethName).
func vethNameOf(id string, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", id, i)))
	return "bv" + hex.EncodeToString(sum[:6])
}
