package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Two teams run an app of the same name, with a service of the same name,
// each in its own namespace; team-a's app has one more service, a shared
// network and a secret of its own.
const (
	teamACompose = `
services:
  api:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "a-api"]
  db:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "a-db"]
`
	teamBCompose = `
services:
  api:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "b-api"]
    deploy:
      resources:
        reservations: {memory: 64M}
`
	// teamBBorrows names team-a's network and secret as its own external
	// ones.
	teamBBorrows = `
services:
  api:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "b-api"]
    networks: [a-shared]
    secrets: [a_password]
networks:
  a-shared: {external: true}
secrets:
  a_password: {external: true}
`
)

// inTaskIn runs the test program in a task of namespace ns (see inTask).
func (c *netCluster) inTaskIn(ns, target string, args ...string) (string, error) {
	out, errOut, err := c.berth(append([]string{"-n", ns, "exec", target, "--", "testapp"}, args...)...)
	if err != nil {
		return out, fmt.Errorf("in %s/%s: testapp %s: %w: %s", ns, target, strings.Join(args, " "), err, strings.TrimSpace(errOut))
	}
	return out, nil
}

// berthFails runs berth and returns what it wrote to stderr, failing the
// test if it succeeded.
func (c *netCluster) berthFails(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.berth(args...)
	if err == nil {
		c.t.Fatalf("berth %s succeeded: %s", strings.Join(args, " "), out)
	}
	return errOut
}

// TestNamespacesIsolateAndKeepQuotas: a container of team-b resolves and
// reaches its own service, and neither resolves nor reaches team-a's; a
// team-b apply cannot use team-a's network or secret; team-b's quota
// refuses a scale and an apply with the numbers, and describe shows the
// use.
func TestNamespacesIsolateAndKeepQuotas(t *testing.T) {
	c := newNetCluster(t, "alpha")
	c.importTestapp()
	c.mustBerth("namespace", "create", "team-a")
	c.mustBerth("namespace", "create", "team-b", "--memory", "256m", "--tasks", "3")
	c.mustBerth("-n", "team-a", "network", "create", "a-shared")
	c.mustBerth("-n", "team-a", "secret", "create", "a_password", c.writeFile("a_password.txt", "team-a only"))
	c.mustBerth("-n", "team-a", "apply", "-f", c.writeFile("a/compose.yaml", teamACompose), "-p", "web")
	c.mustBerth("-n", "team-b", "apply", "-f", c.writeFile("b/compose.yaml", teamBCompose), "-p", "web")
	c.waitRunningIn("team-a", "web/api", 1)
	c.waitRunningIn("team-a", "web/db", 1)
	c.waitRunningIn("team-b", "web/api", 1)

	// team-b's api by its name, and by SERVICE.APP, is its own.
	c.reachIn("team-b", "web/api", "http://api:8080/", "b-api")
	c.reachIn("team-b", "web/api", "http://api.web:8080/", "b-api")
	c.reachIn("team-a", "web/api", "http://db:8080/", "a-db")
	// team-a's names do not resolve in team-b, nor its addresses answer.
	for _, name := range []string{"db", "db.web", "tasks.db"} {
		if out, err := c.inTaskIn("team-b", "web/api", "lookup", "-timeout", "2s", name); err == nil {
			t.Errorf("team-b resolves team-a's %s: %q", name, out)
		}
	}
	aAPI := c.lookupIn("team-a", "web/api", "tasks.api")
	aDB := c.lookupIn("team-a", "web/api", "tasks.db")
	bAPI := c.lookupIn("team-b", "web/api", "tasks.api")
	if aAPI[0] == bAPI[0] {
		t.Fatalf("team-a's and team-b's api share the address %s", aAPI[0])
	}
	for _, addr := range []string{aAPI[0], aDB[0]} {
		if out, err := c.inTaskIn("team-b", "web/api", "get", "-timeout", "2s", "http://"+addr+":8080/"); err == nil {
			t.Errorf("team-b reaches team-a's task at %s: %q", addr, out)
		}
	}

	// team-a's network and secret do not exist for team-b.
	errOut := c.berthFails("-n", "team-b", "apply", "-f", c.writeFile("b/borrow.yaml", teamBBorrows), "-p", "web")
	for _, want := range []string{`network "a-shared" does not exist`, "a_password"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("apply with team-a's network and secret: %q does not say %q", errOut, want)
		}
	}

	// The quota: 1 task of 64 MiB in use out of 3 tasks and 256 MiB.
	errOut = c.berthFails("-n", "team-b", "scale", "web/api=5")
	for _, want := range []string{
		"namespace team-b: tasks quota 3 tasks; in use 1 task; this scale needs 4 tasks more (web/api: 5 replicas)",
		"memory quota 256 MiB; in use 64 MiB; this scale needs 256 MiB more (web/api: 5 replicas × 64 MiB)",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("scale over quota: %q does not say %q", errOut, want)
		}
	}
	errOut = c.berthFails("-n", "team-b", "apply", "-f", c.writeFile("b/big.yaml", strings.Replace(teamBCompose, "64M", "512M", 1)), "-p", "web")
	if want := "namespace team-b: memory quota 256 MiB; in use 64 MiB; this apply needs 448 MiB more (web/api: 1 replica × 512 MiB)"; !strings.Contains(errOut, want) {
		t.Errorf("apply over quota: %q does not say %q", errOut, want)
	}
	// team-a has no quota: the same scale passes there.
	c.mustBerth("-n", "team-a", "scale", "web/api=4")
	c.mustBerth("-n", "team-b", "scale", "web/api=2")
	out := c.mustBerth("namespace", "describe", "team-b")
	// Compared word by word: the columns' widths are the table's business.
	words := " " + strings.Join(strings.Fields(out), " ") + " "
	for _, want := range []string{"Apps: 1", "Services: 1", "tasks 2 3 1", "memory 128MiB 256MiB 128MiB"} {
		if !strings.Contains(words, " "+want+" ") {
			t.Errorf("describe team-b does not show %q:\n%s", want, out)
		}
	}
	if out := c.mustBerth("namespace", "ls"); !strings.Contains(out, "team-b") || !strings.Contains(out, "2/3") {
		t.Errorf("namespace ls:\n%s", out)
	}

	c.mustBerth("-n", "team-b", "delete", "web")
	c.mustBerth("-n", "team-a", "delete", "web")
	c.mustBerth("-n", "team-a", "network", "rm", "a-shared")
	c.mustBerth("-n", "team-a", "secret", "rm", "a_password")
	c.mustBerth("namespace", "rm", "team-a")
}

// waitRunningIn waits until target of namespace ns has exactly n tasks,
// all running.
func (c *netCluster) waitRunningIn(ns, target string, n int) {
	c.t.Helper()
	eventually(c.t, 60*time.Second, func() (bool, string) {
		tasks := c.ps("-n", ns, target)
		running := 0
		for _, t := range tasks {
			if t.State == "running" && t.DesiredState == "running" {
				running++
			}
		}
		return running == n && len(tasks) == n, fmt.Sprintf("%s/%s: want %d running tasks, have %+v", ns, target, n, tasks)
	})
}

// reachIn is reach from a task of namespace ns.
func (c *netCluster) reachIn(ns, target, url, want string) {
	c.t.Helper()
	eventually(c.t, 30*time.Second, func() (bool, string) {
		out, err := c.inTaskIn(ns, target, "get", "-timeout", "2s", url)
		id, ok := parseServedBy(out)
		return err == nil && ok && id.name == want, fmt.Sprintf("from %s/%s, %s: %v %q, want an answer of %s", ns, target, url, err, out, want)
	})
}

// lookupIn is lookup from a task of namespace ns.
func (c *netCluster) lookupIn(ns, target, name string) []string {
	c.t.Helper()
	var addrs []string
	eventually(c.t, 30*time.Second, func() (bool, string) {
		out, err := c.inTaskIn(ns, target, "lookup", "-timeout", "2s", name)
		addrs = strings.Fields(out)
		return err == nil && len(addrs) > 0, fmt.Sprintf("from %s/%s, lookup %s: %v %q", ns, target, name, err, out)
	})
	return addrs
}
