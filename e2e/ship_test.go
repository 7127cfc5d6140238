package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// spreadCompose is a service of replicas spread one per node.
const spreadCompose = `
services:
  web:
    image: %s
    command: ["sleep", "3600"]
    deploy:
      replicas: %d
      placement:
        max_replicas_per_node: 1
`

// TestImageFromPeer imports an image on one machine only and runs a
// service over two: the other machine fetches the image from the first,
// with no registry anywhere.
func TestImageFromPeer(t *testing.T) {
	c := newCluster(t)
	c.startMachine("alpha")
	beta := c.startMachine("beta")
	c.mustBerth("image", "import", "--node", "alpha", busyboxImage)
	if out := c.mustBerth("image", "ls", "--node", "beta", "-o", "json"); strings.Contains(out, "localhost/busybox:latest") {
		t.Fatalf("beta holds the image before any task needs it:\n%s", out)
	}

	c.waitNodeImages("alpha", 1)

	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", fmt.Sprintf(spreadCompose, "localhost/busybox:latest", 2)), "-p", "ship")
	tasks := c.waitRunning("ship/web", 2, 2*time.Minute)
	c.taskOn(tasks, "alpha")
	c.taskOn(tasks, "beta")
	// The control plane knew alpha held the image before the tasks were
	// placed, so beta's first task fetched it: none was rejected.
	for _, tk := range c.ps("ship/web", "-a") {
		if tk.State != "running" {
			t.Errorf("task %s on %s is %s (%s), want every task running at the first try", tk.ID, tk.Node, tk.State, tk.Error)
		}
	}

	if out := c.mustBerth("image", "ls", "--node", "beta", "-o", "json"); !strings.Contains(out, "localhost/busybox:latest") {
		t.Fatalf("beta runs the service but does not list its image:\n%s", out)
	}
	// The agent says where the image came from.
	beta.waitOutput(t, "pulled an image from a peer", 10*time.Second)
	if out := beta.out.String(); !strings.Contains(out, "peer=alpha") {
		t.Fatalf("beta's agent did not say it pulled from alpha:\n%s", out)
	}
	c.mustBerth("delete", "ship")
}

// imagesLine matches the image count of `berth describe node`.
var imagesLine = regexp.MustCompile(`(?m)^Images:\s+(\d+)`)

// waitNodeImages waits until the control plane's record of node lists n
// images.
func (c *cluster) waitNodeImages(node string, n int) {
	c.t.Helper()
	eventually(c.t, 30*time.Second, func() (bool, string) {
		out := c.mustBerth("describe", "node", node)
		m := imagesLine.FindStringSubmatch(out)
		return m != nil && m[1] == strconv.Itoa(n), fmt.Sprintf("node %s: want %d images recorded:\n%s", node, n, out)
	})
}
