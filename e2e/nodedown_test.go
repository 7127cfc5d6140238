package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNodeDownConfirmsAStoppedNode: a node whose agent stopped stays
// unreachable (gossip says it left; the grace is long), its tasks where
// they were, until an operator confirms it down with `berth node down`;
// then its tasks run on the other node. A connected node is refused.
func TestNodeDownConfirmsAStoppedNode(t *testing.T) {
	c := newCluster(t, withServerArgs("--node-down-grace", "1h"))
	c.startAgent("alpha")
	beta := c.startAgent("beta")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "confirm")
	c.waitRunning("confirm/sleeper", 2, 60*time.Second)

	if out, errOut, err := c.berth("node", "down", "alpha"); err == nil || !strings.Contains(out+errOut, "alpha is connected") {
		t.Fatalf("node down of a connected node: %v\n%s%s", err, out, errOut)
	}
	ls := c.mustBerth("node", "ls")
	if !strings.Contains(ls, "connected") {
		t.Errorf("node ls does not show ready nodes as connected:\n%s", ls)
	}

	beta.stop()
	eventually(t, 30*time.Second, func() (bool, string) {
		ls := c.mustBerth("node", "ls")
		return strings.Contains(ls, "unreachable"), "beta is not unreachable:\n" + ls
	})
	out := c.mustBerth("node", "down", "beta")
	if !strings.Contains(out, "beta down") {
		t.Errorf("node down says %q, want it to name beta", out)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		on := 0
		tasks := c.ps("confirm/sleeper")
		for _, tk := range tasks {
			if tk.State == "running" && tk.Node == "alpha" {
				on++
			}
		}
		return on == 2, fmt.Sprintf("want both replicas running on alpha, have %+v", tasks)
	})
	c.mustBerth("delete", "confirm")
}
