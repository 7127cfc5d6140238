package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dbCompose is a database-like service: testapp keeps its key/value store
// in its volume, needs its password secret to start, and reads a config.
// %s is a generation: changing it changes the spec, which rolls the
// service.
const dbCompose = `
services:
  db:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "db", "-data", "/data",
              "-require-file", "/run/secrets/db_password"]
    environment:
      GENERATION: "%s"
    volumes:
      - db-data:/data
    secrets:
      - db_password
      - source: api_key
        target: /etc/api.key
        uid: "1000"
        gid: "1000"
        mode: 0400
    configs:
      - source: settings
        target: /etc/db.conf
volumes:
  db-data:
secrets:
  db_password:
    file: ./db_password.txt
  api_key:
    file: ./api_key.txt
configs:
  settings:
    content: |
      max_connections=10
`

// secretValue returns a random string that can appear nowhere by chance.
func secretValue(t *testing.T, what string) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return what + "-" + hex.EncodeToString(b)
}

// inContainer runs a command in the container of task target (berth exec)
// and returns its output.
func (c *cluster) inContainer(target string, args ...string) (string, error) {
	out, errOut, err := c.berth(append([]string{"exec", target, "--"}, args...)...)
	if err != nil {
		return out, fmt.Errorf("in %s: %s: %w: %s", target, strings.Join(args, " "), err, strings.TrimSpace(errOut))
	}
	return out, nil
}

// kv reads (value "") or writes key in the store of the db task target,
// retrying while its server starts.
func (c *cluster) kv(target, key, value string) string {
	c.t.Helper()
	args := []string{"testapp", "get", "-timeout", "2s"}
	if value != "" {
		args = append(args, "-X", "PUT", "-d", value)
	}
	args = append(args, "http://127.0.0.1:8080/kv/"+key)
	var out string
	eventually(c.t, 30*time.Second, func() (bool, string) {
		var err error
		out, err = c.inContainer(target, args...)
		return err == nil, fmt.Sprintf("kv %s in %s: %v", key, target, err)
	})
	return out
}

// slotTask waits until slot 1 of target runs a task other than the ones in
// not, and returns it.
func (c *cluster) slotTask(target string, not ...string) task {
	c.t.Helper()
	var got task
	eventually(c.t, 90*time.Second, func() (bool, string) {
		tasks := c.ps(target)
		for _, tk := range tasks {
			if tk.Slot == 1 && tk.State == "running" && tk.DesiredState == "running" && !contains(not, tk.ID) {
				got = tk
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s: want a new running task in slot 1 (not %v), have %+v", target, not, tasks)
	})
	return got
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestStatefulServiceKeepsItsData runs a database-like service with a
// named volume, a password secret and a config on a two-node cluster. Its
// data survives a killed container, a rolling update, an agent restart and
// `berth delete` + apply; its slot stays on the volume's node, and while
// that node is down the slot waits, saying why, instead of starting empty
// elsewhere. The secrets reach the container with the asked owner and
// mode, a changed secret rolls the service, and no secret is ever in the
// clear in a data dir (etcd's files included), a log or an API answer.
func TestStatefulServiceKeepsItsData(t *testing.T) {
	c := newCluster(t, withServerArgs("--node-down-grace", "10m"))
	agents := map[string]*proc{"alpha": c.startAgent("alpha"), "beta": c.startAgent("beta")}
	c.mustBerth("image", "import", testappImage())
	password, apiKey := secretValue(t, "pw"), secretValue(t, "key")
	c.writeFile("db_password.txt", password)
	c.writeFile("api_key.txt", apiKey)
	file := c.writeFile("compose.yaml", fmt.Sprintf(dbCompose, "1"))
	c.mustBerth("apply", "-f", file, "-p", "dbapp")

	first := c.slotTask("dbapp/db")
	home := first.Node
	c.kv(first.ID, "greeting", "kept")

	// The secrets and the config are files with the asked owner and mode.
	if out, err := c.inContainer(first.ID, "cat", "/run/secrets/db_password"); err != nil || out != password {
		t.Fatalf("/run/secrets/db_password: %v %q, want the secret", err, out)
	}
	if out, err := c.inContainer(first.ID, "stat", "-c", "%a %u %g", "/etc/api.key", "/run/secrets/db_password"); err != nil || !strings.HasPrefix(out, "400 1000 1000\n444 0 0") {
		t.Fatalf("stat of the secrets: %v %q, want 400 1000 1000 then 444 0 0", err, out)
	}
	if out, err := c.inContainer(first.ID, "cat", "/etc/db.conf"); err != nil || out != "max_connections=10\n" {
		t.Fatalf("/etc/db.conf: %v %q", err, out)
	}

	// A killed container: the slot's next task runs on the same node
	// with the same data.
	c.killTask(first)
	second := c.slotTask("dbapp/db", first.ID)
	if second.Node != home || c.kv(second.ID, "greeting", "") != "kept" {
		t.Fatalf("after a kill: task %s on %s, want %s with the data", second.ID, second.Node, home)
	}

	// A rolling update.
	c.writeFile("compose.yaml", fmt.Sprintf(dbCompose, "2"))
	c.mustBerth("apply", "-f", file, "-p", "dbapp")
	third := c.slotTask("dbapp/db", first.ID, second.ID)
	if third.Node != home || c.kv(third.ID, "greeting", "") != "kept" {
		t.Fatalf("after an update: task %s on %s, want %s with the data", third.ID, third.Node, home)
	}

	// An agent restart adopts the container, data and all.
	agents[home].stop()
	agents[home] = c.startAgent(home)
	if tk := c.slotTask("dbapp/db", first.ID, second.ID); tk.ID != third.ID || c.kv(tk.ID, "greeting", "") != "kept" {
		t.Fatalf("after an agent restart: task %s, want %s adopted with the data", tk.ID, third.ID)
	}

	// Delete and apply again: the volume outlived the app.
	c.mustBerth("delete", "dbapp")
	eventually(t, 60*time.Second, func() (bool, string) {
		tasks := c.ps("dbapp/db")
		return len(tasks) == 0, fmt.Sprintf("tasks left after delete: %+v", tasks)
	})
	if out := c.mustBerth("volume", "ls"); !strings.Contains(out, "dbapp_db-data.1") || !strings.Contains(out, home) {
		t.Fatalf("berth volume ls after delete does not show dbapp_db-data.1 on %s:\n%s", home, out)
	}
	c.mustBerth("apply", "-f", file, "-p", "dbapp")
	fourth := c.slotTask("dbapp/db", first.ID, second.ID, third.ID)
	if fourth.Node != home || c.kv(fourth.ID, "greeting", "") != "kept" {
		t.Fatalf("after delete and apply: task %s on %s, want %s with the data", fourth.ID, fourth.Node, home)
	}

	// The volume's node dies (its agent frozen: silent, as a dead
	// machine is): the slot waits for it, saying why, and nothing starts
	// on the other node with an empty volume.
	agents[home].freeze()
	want := fmt.Sprintf("waiting for node %s, which holds volume dbapp_db-data.1", home)
	eventually(t, 60*time.Second, func() (bool, string) {
		tasks := c.ps("dbapp/db")
		for _, tk := range tasks {
			if tk.DesiredState == "running" && tk.ID != fourth.ID && strings.Contains(tk.Message+tk.Error, want) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("want a pending task saying %q, have %+v", want, tasks)
	})
	for _, tk := range c.ps("dbapp/db") {
		if tk.State == "running" && tk.Node != home {
			t.Fatalf("task %s runs on %s while the volume's node is down", tk.ID, tk.Node)
		}
	}
	agents[home].kill()
	agents[home] = c.startAgent(home)
	fifth := c.slotTask("dbapp/db", first.ID, second.ID, third.ID)
	if fifth.Node != home || c.kv(fifth.ID, "greeting", "") != "kept" {
		t.Fatalf("after the node came back: task %s on %s, want %s with the data", fifth.ID, fifth.Node, home)
	}

	// A changed secret is a new version that rolls the service.
	rotated := secretValue(t, "pw")
	c.writeFile("db_password.txt", rotated)
	c.mustBerth("apply", "-f", file, "-p", "dbapp")
	sixth := c.slotTask("dbapp/db", first.ID, second.ID, third.ID, fourth.ID, fifth.ID)
	if out, err := c.inContainer(sixth.ID, "cat", "/run/secrets/db_password"); err != nil || out != rotated {
		t.Fatalf("after the secret changed: %v %q, want the new secret", err, out)
	}
	if out := c.mustBerth("secret", "ls"); !strings.Contains(out, "dbapp_db_password") {
		t.Fatalf("berth secret ls does not list dbapp_db_password:\n%s", out)
	}

	// No secret in the clear: not in any API answer, log line or file of
	// the cluster's data dirs (etcd's database and log among them).
	answers := []string{
		c.mustBerth("get", "services", "-o", "yaml"),
		c.mustBerth("describe", "dbapp/db"),
		c.mustBerth("ps", "-a", "-o", "json"),
		c.mustBerth("events"),
		c.mustBerth("secret", "inspect", "dbapp_db_password"),
		c.mustBerth("secret", "ls"),
	}
	for _, secret := range []string{password, rotated, apiKey} {
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Fatalf("an API answer holds a secret:\n%s", a)
			}
		}
		if strings.Contains(c.server.out.String(), secret) {
			t.Fatal("the server's log holds a secret")
		}
		for name, p := range agents {
			if strings.Contains(p.out.String(), secret) {
				t.Fatalf("agent %s's log holds a secret", name)
			}
		}
	}
	c.server.stop() // etcd's files are complete once it stopped
	for _, dir := range []string{filepath.Join(c.dir, "server"), filepath.Join(c.dir, "agent-alpha"), filepath.Join(c.dir, "agent-beta")} {
		for _, secret := range []string{password, rotated, apiKey} {
			if where := grepTree(t, dir, secret); where != "" {
				t.Fatalf("a secret is in the clear in %s", where)
			}
		}
	}
	c.startServer()

	// delete --volumes removes the data too.
	c.mustBerth("delete", "dbapp", "--volumes")
	eventually(t, 60*time.Second, func() (bool, string) {
		out := c.mustBerth("volume", "ls")
		return !strings.Contains(out, "dbapp_db-data.1"), "volume still listed:\n" + out
	})
}

// grepTree returns the first file under dir that holds s, or "".
func grepTree(t *testing.T, dir, s string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != "" || !d.Type().IsRegular() {
			return nil // a file that went away, or not a file
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

const bindCompose = `
services:
  reader:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    volumes:
      - type: bind
        source: %s
        target: /host
        read_only: true
`

const privilegedCompose = `
services:
  root:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    privileged: true
`

// TestHostAccessNeedsASetting: a bind mount of a host path, and a
// privileged container, are refused (naming the path or the option, and
// the setting) until an operator allows them; a refused apply writes
// nothing. Containers get Docker's hardening by default: no NET_RAW,
// no_new_privileges, seccomp.
func TestHostAccessNeedsASetting(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	shared := filepath.Join(c.dir, "shared")
	c.writeFile("shared/hello.txt", "from the host")
	file := c.writeFile("bind.yaml", fmt.Sprintf(bindCompose, shared))

	_, errOut, err := c.berth("apply", "-f", file, "-p", "bind")
	if err == nil || !strings.Contains(errOut, shared) || !strings.Contains(errOut, "--allow-bind-mount") {
		t.Fatalf("bind mount of %s: err %v, stderr %q; want a refusal naming the path and --allow-bind-mount", shared, err, errOut)
	}
	if tasks := c.ps("bind/reader", "-a"); len(tasks) != 0 {
		t.Fatalf("a refused apply left tasks: %+v", tasks)
	}
	_, errOut, err = c.berth("apply", "-f", c.writeFile("priv.yaml", privilegedCompose), "-p", "priv")
	if err == nil || !strings.Contains(errOut, "privileged") || !strings.Contains(errOut, "--allow-privileged") {
		t.Fatalf("privileged: err %v, stderr %q; want a refusal naming --allow-privileged", err, errOut)
	}

	c.mustBerth("cluster", "settings", "--allow-bind-mount", c.dir)
	c.mustBerth("apply", "-f", file, "-p", "bind")
	reader := c.waitRunning("bind/reader", 1, 60*time.Second)[0]
	if out, err := c.inContainer(reader.ID, "cat", "/host/hello.txt"); err != nil || out != "from the host" {
		t.Fatalf("/host/hello.txt: %v %q", err, out)
	}
	if _, err := c.inContainer(reader.ID, "touch", "/host/new"); err == nil {
		t.Fatal("a read-only bind mount took a write")
	}

	status, err := c.inContainer(reader.ID, "cat", "/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	var capEff uint64
	fmt.Sscanf(fields["CapEff"], "%x", &capEff)
	const capNetRaw = 13
	if capEff&(1<<capNetRaw) != 0 || capEff == 0 {
		t.Errorf("CapEff = %s: want Docker's default set without NET_RAW", fields["CapEff"])
	}
	if fields["NoNewPrivs"] != "1" || fields["Seccomp"] != "2" {
		t.Errorf("NoNewPrivs %q, Seccomp %q: want 1 and 2 (filter)", fields["NoNewPrivs"], fields["Seccomp"])
	}
	c.mustBerth("delete", "bind")
}
