package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/network"
	"github.com/google/nftables"
)

const cleanupCompose = `
services:
  web:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "web"]
    ports:
      - "8080:8080"
    networks: [front]
networks:
  front: {}
`

// nodeLeftovers lists what node left on this machine and in its host's
// network namespace ns: container network namespaces, Berth's links
// (veths bv…, the overlay bx…) and nftables tables.
func nodeLeftovers(t *testing.T, name, ns string) []string {
	t.Helper()
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), network.NetNSPrefix(name)) {
			out = append(out, "netns "+e.Name())
		}
	}
	links, err := exec.Command("ip", "-n", ns, "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip -n %s link: %v", ns, err)
	}
	for _, line := range strings.Split(string(links), "\n") {
		if f := strings.Fields(line); len(f) > 1 && (strings.HasPrefix(f[1], "bv") || strings.HasPrefix(f[1], "bx")) {
			out = append(out, "link "+strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	err = runInNetNS(ns, func() {
		conn, err := nftables.New()
		if err != nil {
			t.Errorf("nftables: %v", err)
			return
		}
		tables, err := conn.ListTables()
		if err != nil {
			t.Errorf("nftables: %v", err)
		}
		for _, tb := range tables {
			out = append(out, "nftables table "+tb.Name)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAgentCleanup runs a service with a network and a published port on a
// node, then berth agent --cleanup (or uninstall): refused while the agent runs; once it
// stopped, the node's containers, network namespaces, links, nftables
// table and data dir are gone, and it printed what it removed.
func TestAgentCleanup(t *testing.T) {
	name := fmt.Sprintf("clean%d", os.Getpid()%100000)
	c := newNetCluster(t, name)
	c.importTestapp()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", cleanupCompose), "-p", "leftover")
	c.waitRunning("leftover/web", 1, 120*time.Second)

	ns := c.host(name).ns
	dataDir := filepath.Join(c.dir, "agent-"+name)
	id := nodeID(t, dataDir)
	if n := countContainers(t, id); n != 1 {
		t.Fatalf("%d containers on the node before cleanup, want 1", n)
	}
	before := nodeLeftovers(t, name, ns)
	for _, want := range []string{"netns ", "link bv", "nftables table "} {
		if !strings.Contains(strings.Join(before, "\n"), want) {
			t.Fatalf("before cleanup the node holds %v: no %q, so the test would prove nothing", before, want)
		}
	}

	cleanup := func(how ...string) (string, error) {
		bin, args := command(ns, append(how, "--name", name, "--data-dir", dataDir, "--containerd-namespace", namespace)...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	// berth uninstall is the same command.
	out, err := cleanup("uninstall")
	if err == nil || !strings.Contains(out, "another berth agent (pid") || !strings.Contains(out, "stop it first") {
		t.Fatalf("cleanup while the agent runs: %v\n%s\nwant a refusal naming the running agent", err, out)
	}
	if n := countContainers(t, id); n != 1 {
		t.Fatalf("the refused cleanup changed the node: %d containers, want 1", n)
	}

	c.agents[name].stop()
	out, err = cleanup("agent", "--cleanup")
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	for _, want := range []string{"removed container ", "removed network of node " + name, "removed data dir " + dataDir, "node " + name + " is clean"} {
		if !strings.Contains(out, want) {
			t.Errorf("cleanup's output does not say %q:\n%s", want, out)
		}
	}
	if n := countContainers(t, id); n != 0 {
		t.Errorf("%d containers of the node left after cleanup", n)
	}
	if left := nodeLeftovers(t, name, ns); len(left) > 0 {
		t.Errorf("after cleanup the node still holds %v", left)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		var left []string
		filepath.Walk(dataDir, func(path string, _ os.FileInfo, _ error) error { left = append(left, path); return nil })
		t.Errorf("the data dir %s is still there (%v), holding %v; cleanup said:\n%s", dataDir, err, left, out)
	}
}
