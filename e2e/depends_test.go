package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// dependsCompose is an app whose web waits for db to be healthy (its check
// passes once db has been up two seconds) and for migrate to exit 0.
const dependsCompose = `
services:
  db:
    image: localhost/busybox:latest
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 200ms
      start_period: 30s
  migrate:
    image: localhost/busybox:latest
    command: ["sh", "-c", "sleep 1; exit 0"]
    restart: "no"
  web:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    depends_on:
      db:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
`

// timedTask is a row of berth ps -o json with the time it entered its
// state.
type timedTask struct {
	task
	Since time.Time `json:"since"`
}

// psTimed returns the current task of each service of target (every
// service here has one slot), finished ones included.
func (c *cluster) psTimed(target string) map[string]timedTask {
	c.t.Helper()
	var tasks []timedTask
	out := c.mustBerth("ps", target, "--all", "-o", "json")
	if err := json.Unmarshal([]byte(out), &tasks); err != nil {
		c.t.Fatalf("berth ps -o json: %v\n%s", err, out)
	}
	// ps lists the task meant to run first in each slot.
	byService := map[string]timedTask{}
	for _, tk := range tasks {
		if _, ok := byService[tk.Service]; !ok {
			byService[tk.Service] = tk
		}
	}
	return byService
}

// TestDependsOnGatesStart: web stays pending, saying what it waits for,
// until db is healthy and migrate has exited 0; it never starts earlier.
func TestDependsOnGatesStart(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", dependsCompose), "-p", "deps")

	sawWaiting := false
	eventually(t, 30*time.Second, func() (bool, string) {
		tasks := c.psTimed("deps")
		db, web := tasks["db"], tasks["web"]
		dbHealthy := db.State == "running" && db.Health == "healthy"
		if web.State != "" && web.State != "pending" && !dbHealthy {
			t.Fatalf("web is %s while db is %s (%s): it must wait for db to be healthy", web.State, db.State, db.Health)
		}
		if web.State == "pending" && !dbHealthy {
			if !strings.HasPrefix(web.Message, "waiting for ") || !strings.Contains(web.Message, "db (healthy)") {
				t.Fatalf("pending web says %q, want it to say it is waiting for db (healthy)", web.Message)
			}
			sawWaiting = true
		}
		return web.State == "running", fmt.Sprintf("want web running; have %+v", tasks)
	})
	if !sawWaiting {
		t.Fatalf("web was never seen waiting for db")
	}

	tasks := c.psTimed("deps")
	db, migrate, web := tasks["db"], tasks["migrate"], tasks["web"]
	if db.Health != "healthy" || migrate.State != "complete" {
		t.Fatalf("web runs while db is %s and migrate is %s; want db healthy and migrate complete", db.Health, migrate.State)
	}
	// Since has a resolution of one second; within it, the order above
	// (web never seen running before db was healthy) is the proof.
	if web.Since.Before(db.Since) || web.Since.Before(migrate.Since) {
		t.Fatalf("web started at %s, before db became healthy (%s) or migrate completed (%s)", web.Since, db.Since, migrate.Since)
	}
	c.mustBerth("delete", "deps")
}
