package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// rolloutCompose runs three replicas; the update starts each new task
// beside the old one, stops the old one once the new one is healthy, and
// rolls back on the first failure.
const rolloutCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: %s
    healthcheck:
      test: ["CMD", "true"]
      interval: 200ms
    deploy:
      replicas: 3
      update_config:
        parallelism: 1
        order: start-first
        failure_action: rollback
        monitor: 2s
      rollback_config:
        parallelism: 0
        monitor: 500ms
`

// runningCount counts the tasks of target that run and are meant to.
func runningCount(tasks []task) int {
	n := 0
	for _, tk := range tasks {
		if tk.State == "running" && tk.DesiredState == "running" {
			n++
		}
	}
	return n
}

// TestFailingUpdateRollsBack applies a version whose containers exit at
// once: apply --wait fails saying the update was rolled back, the three
// replicas of the first version kept running throughout (start-first), and
// the history shows the three versions.
func TestFailingUpdateRollsBack(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	compose := c.writeFile("compose.yaml", fmt.Sprintf(rolloutCompose, `["sleep", "3600"]`))
	c.mustBerth("apply", "-f", compose, "-p", "roll", "--wait", "--timeout", "60s")
	before := ids(c.waitRunning("roll/web", 3, 30*time.Second))

	c.writeFile("compose.yaml", fmt.Sprintf(rolloutCompose, `["sh", "-c", "exit 3"]`))
	done := make(chan struct{})
	var out, errOut string
	var err error
	go func() {
		defer close(done)
		out, errOut, err = c.berth("apply", "-f", compose, "-p", "roll", "--wait", "--timeout", "60s")
	}()
	// While the update runs and rolls back, the three old tasks keep
	// running: each new task starts beside the one it would replace, which
	// would stop only once the new one is healthy.
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(100 * time.Millisecond):
		}
		if n := runningCount(c.ps("roll/web")); n < 3 {
			t.Fatalf("only %d tasks of roll/web run during the update, want 3", n)
		}
	}
	if err == nil {
		t.Fatalf("apply --wait of a failing version succeeded:\n%s%s", out, errOut)
	}
	if !strings.Contains(out+errOut, "rolled back") {
		t.Fatalf("apply --wait does not say the update was rolled back:\nstdout: %s\nstderr: %s", out, errOut)
	}
	// The failed task of the new version is listed beside the three that
	// run: those are the first version's.
	for _, tk := range c.ps("roll/web") {
		if tk.State != "running" {
			continue
		}
		if !before[tk.ID] {
			t.Fatalf("task %s runs after the rollback but was not one of the first version's: the rollback need not restart anything", tk.ID)
		}
	}
	// rollout status fails too: the version applied last did not land.
	status, _, err := c.berth("rollout", "status", "roll/web")
	if err == nil || !strings.Contains(status, "rollback-completed") || !strings.Contains(status, "exit code 3") || !strings.Contains(status, "3/3 tasks updated") {
		t.Fatalf("rollout status (err %v) does not tell the rollback, why, and that the three tasks run the current spec:\n%s", err, status)
	}
	history := c.mustBerth("rollout", "history", "roll/web")
	for _, want := range []string{"1", "2", "3", "rollback to version 1"} {
		if !strings.Contains(history, want) {
			t.Fatalf("rollout history lacks %q:\n%s", want, history)
		}
	}
	c.mustBerth("delete", "roll")
}

// scaledCompose is a service of two replicas.
const scaledCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      replicas: 2
`

// TestDrainRebalanceAndScale: draining a node moves its tasks to the other
// without lowering the running count; once it is active again, rebalance
// spreads the tasks back; scale adds and removes replicas.
func TestDrainRebalanceAndScale(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", scaledCompose), "-p", "ops", "--wait", "--timeout", "60s")
	c.waitRunningOn("ops/web", "alpha", 2, 30*time.Second)
	c.startAgent("beta")

	c.mustBerth("node", "drain", "alpha")
	eventually(t, 60*time.Second, func() (bool, string) {
		tasks := c.ps("ops/web")
		if n := runningCount(tasks); n < 2 {
			t.Fatalf("only %d tasks run while alpha drains, want 2: %+v", n, tasks)
		}
		onBeta := 0
		for _, tk := range tasks {
			if tk.Node == "beta" && tk.State == "running" {
				onBeta++
			}
		}
		return onBeta == 2 && len(tasks) == 2, fmt.Sprintf("want both tasks running on beta, have %+v", tasks)
	})
	if nodes := c.mustBerth("node", "ls"); !strings.Contains(nodes, "drain") {
		t.Fatalf("node ls does not show alpha drained:\n%s", nodes)
	}

	c.mustBerth("node", "activate", "alpha")
	c.mustBerth("rebalance", "ops", "--wait")
	tasks := c.waitRunning("ops/web", 2, 30*time.Second)
	if c.taskOn(tasks, "alpha").ID == "" || c.taskOn(tasks, "beta").ID == "" {
		t.Fatalf("after rebalance, want one task on each node: %+v", tasks)
	}

	c.mustBerth("scale", "ops/web=4")
	c.waitRunningOn("ops/web", "alpha", 2, 60*time.Second)
	c.waitRunningOn("ops/web", "beta", 2, 60*time.Second)
	c.mustBerth("scale", "ops/web=1")
	c.waitRunning("ops/web", 1, 60*time.Second)
	c.mustBerth("delete", "ops")
}
