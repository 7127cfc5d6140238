package e2e

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snapCompose runs two sleepers that each get a secret.
const snapCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    secrets: [token]
    deploy:
      replicas: 2
secrets:
  token:
    file: ./token.txt
`

// TestSnapshotRestoreAdoptsApps saves a snapshot of a cluster running an
// app with a secret, stops the server and destroys its data dir while the
// agent and its containers keep running, restores the snapshot into a new
// data dir and starts a server on it at the same address. The agent
// reconnects and the app comes back as it was: the same tasks, the same
// container processes (adopted, not restarted), and a new task still
// reads the secret, which only the key-encryption key carried in the
// snapshot opens. A wrong passphrase, a damaged file and a non-empty data
// dir are refused without changing anything.
func TestSnapshotRestoreAdoptsApps(t *testing.T) {
	c := newCluster(t, withServerArgs("--snapshot-interval", "2s", "--snapshot-keep", "2"))
	c.startAgent("alpha")
	c.importImage()
	secret := secretValue(t, "token")
	c.writeFile("token.txt", secret)
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", snapCompose), "-p", "snap")
	before := c.waitRunning("snap/web", 2, 90*time.Second)
	node := nodeID(t, filepath.Join(c.dir, "agent-alpha"))
	pids := runningPids(t, node)
	if len(pids) != 2 {
		t.Fatalf("running containers (id: pid) = %v, want 2", pids)
	}

	passFile := filepath.Join(c.dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("a long passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(c.dir, "cluster.snapshot")
	out := c.mustBerth("snapshot", "save", snap, "--passphrase-file", passFile)
	if !strings.Contains(out, "carries the key-encryption key sealed") {
		t.Errorf("berth snapshot save said:\n%s", out)
	}
	if st, err := os.Stat(snap); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the snapshot file: %v, mode %v; want it with mode 0600", err, st.Mode().Perm())
	}
	key, err := os.ReadFile(filepath.Join(c.dir, "server", "key-encryption-key"))
	if err != nil {
		t.Fatal(err)
	}
	if grepTree(t, c.dir, string(key)) != filepath.Join(c.dir, "server", "key-encryption-key") {
		t.Fatal("the key-encryption key is in the clear outside the server's key file")
	}
	inspect := c.mustBerth("snapshot", "inspect", snap)
	if !strings.Contains(inspect, "sealed with a passphrase") {
		t.Errorf("berth snapshot inspect:\n%s", inspect)
	}
	// Only an admin takes snapshots, and each one is audited.
	token := strings.TrimSpace(c.mustBerth("token", "create", "ci", "--role", "deployer", "-q"))
	c.mustFail([]string{"--token", token, "snapshot", "save", filepath.Join(c.dir, "refused.snapshot"), "--without-key"}, "permission denied")
	if _, err := os.Stat(filepath.Join(c.dir, "refused.snapshot")); !os.IsNotExist(err) {
		t.Errorf("a refused save left a file: %v", err)
	}
	if audit := c.mustBerth("audit", "-o", "json"); !strings.Contains(audit, "SaveSnapshot") {
		t.Errorf("the audit log does not show the snapshot saved:\n%s", audit)
	}

	// The leader also writes snapshots every 2s, keeping 2, without the
	// key.
	periodic := filepath.Join(c.dir, "server", "snapshots")
	var kept []string
	eventually(t, time.Minute, func() (bool, string) {
		// Snapshots being written are hidden temporary files.
		kept, _ = filepath.Glob(filepath.Join(periodic, "berth-*.snapshot"))
		return len(kept) == 2, fmt.Sprintf("%s holds %v, want 2 snapshots", periodic, kept)
	})
	// The newest: the oldest may be pruned meanwhile.
	if out := c.mustBerth("snapshot", "inspect", kept[1]); !strings.Contains(out, "Key-encryption key: none") {
		t.Errorf("a periodic snapshot:\n%s", out)
	}

	// Refused, with nothing changed: a wrong passphrase, a damaged file,
	// a data dir in use.
	restored := filepath.Join(c.dir, "restored")
	wrong := filepath.Join(c.dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not the passphrase"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.mustFail([]string{"snapshot", "restore", snap, "--data-dir", restored, "--passphrase-file", wrong}, "wrong passphrase")
	if _, err := os.Stat(restored); !os.IsNotExist(err) {
		t.Fatalf("a refused restore left %s behind: %v", restored, err)
	}
	damaged := filepath.Join(c.dir, "damaged.snapshot")
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)*3/4] ^= 0x01
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.mustFail([]string{"snapshot", "restore", damaged, "--data-dir", restored, "--passphrase-file", passFile}, "does not match its checksum")
	if entries, _ := os.ReadDir(restored); len(entries) != 0 {
		t.Fatalf("a refused restore left %d entries in %s", len(entries), restored)
	}
	c.mustFail([]string{"snapshot", "restore", snap, "--data-dir", filepath.Join(c.dir, "server"), "--passphrase-file", passFile}, "is not empty")

	// The server goes, and its data with it; the agent and its
	// containers stay.
	c.server.stop()
	if err := os.RemoveAll(filepath.Join(c.dir, "server")); err != nil {
		t.Fatal(err)
	}
	out = c.mustBerth("snapshot", "restore", snap, "--data-dir", restored, "--passphrase-file", passFile)
	if !strings.Contains(out, "berth server --data-dir "+restored+" --listen "+c.addr) {
		t.Errorf("berth snapshot restore does not say how to start:\n%s", out)
	}
	if st, err := os.Stat(filepath.Join(restored, "key-encryption-key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the restored key file: %v", err)
	}
	c.startServerOn(restored)

	after := c.waitRunning("snap/web", 2, 3*time.Minute)
	if got, want := ids(after), ids(before); !maps.Equal(got, want) {
		t.Fatalf("tasks after the restore %v, want the same tasks %v", got, want)
	}
	if got := runningPids(t, node); !maps.Equal(got, pids) {
		t.Fatalf("running containers after the restore (id: pid) = %v, want the same processes %v: they were restarted", got, pids)
	}
	// A new task gets the secret: the restored cluster opens it.
	c.mustBerth("scale", "snap/web=3")
	third := c.waitRunning("snap/web", 3, 2*time.Minute)
	for _, tk := range third {
		if ids(before)[tk.ID] {
			continue
		}
		got, err := c.inContainer(tk.ID, "cat", "/run/secrets/token")
		if err != nil || got != secret {
			t.Fatalf("the new task %s reads /run/secrets/token: %q, %v; want the secret", tk.ID, got, err)
		}
	}

	// Restored again, at another address: the agent, restarted with
	// --join giving it, comes back with the snapshot's two tasks, and
	// stops the third, which the restored cluster never had.
	c.server.stop()
	again := filepath.Join(c.dir, "restored-again")
	c.mustBerth("snapshot", "restore", snap, "--data-dir", again, "--passphrase-file", passFile)
	c.addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.startServerOn(again)
	c.agents["alpha"].stop()
	c.startAgent("alpha")
	after = c.waitRunning("snap/web", 2, 3*time.Minute)
	if got, want := ids(after), ids(before); !maps.Equal(got, want) {
		t.Fatalf("tasks after the second restore %v, want the snapshot's tasks %v", got, want)
	}
	eventually(t, 2*time.Minute, func() (bool, string) {
		got := runningPids(t, node)
		return maps.Equal(got, pids), fmt.Sprintf("running containers (id: pid) = %v, want only the snapshot's, unrestarted: %v", got, pids)
	})
	c.mustBerth("delete", "snap")
}

// mustFail runs the CLI, which must fail with want in its error.
func (c *cluster) mustFail(args []string, want string) {
	c.t.Helper()
	out, errOut, err := c.berth(args...)
	if err == nil || !strings.Contains(errOut, want) {
		c.t.Fatalf("berth %s: %v\nstdout: %s\nstderr: %s\nwant a failure saying %q", strings.Join(args, " "), err, out, errOut, want)
	}
}

// startServerOn starts the cluster's server, at its address, on another
// data dir.
func (c *cluster) startServerOn(dataDir string) {
	c.t.Helper()
	args := append([]string{"server", "--config", c.configPath, "--data-dir", dataDir, "--listen", c.addr, "--log-level", "debug",
		"--container-range", c.containerRange, "--network-range", c.networkRange}, c.serverArgs...)
	bin, args := command(c.netns, args...)
	c.server = startProc(c.t, "server", nil, bin, args...)
	c.server.waitOutput(c.t, "Join a node with:", 60*time.Second)
}

// TestSnapshotExternalEtcd saves a snapshot of a cluster on an external
// etcd (Debian's), through the same maintenance API, and extracts its
// etcd part, checked, for etcd's own restore.
func TestSnapshotExternalEtcd(t *testing.T) {
	etcdBin := "/usr/bin/etcd"
	if _, err := os.Stat(etcdBin); err != nil {
		t.Fatalf("etcd is not installed (hack/setup-host.sh installs etcd-server): %v", err)
	}
	dir := t.TempDir()
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	e := startProc(t, "etcd", []string{"ETCD_UNSUPPORTED_ARCH="}, etcdBin,
		"--name", "e2e", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer)
	e.waitOutput(t, "ready to serve client requests", 60*time.Second)

	c := newCluster(t, withEtcd(client))
	passFile := filepath.Join(c.dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("another passphrase"), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(c.dir, "external.snapshot")
	c.mustBerth("snapshot", "save", snap, "--passphrase-file", passFile)
	out := c.mustBerth("snapshot", "inspect", snap, "-o", "json")
	if !strings.Contains(out, `"etcd_revision"`) || strings.Contains(out, `"etcd_revision": 0`) {
		t.Errorf("berth snapshot inspect of an external etcd's snapshot:\n%s", out)
	}
	db := filepath.Join(c.dir, "etcd.db")
	out = c.mustBerth("snapshot", "extract-etcd", snap, db)
	if !strings.Contains(out, "Wrote the etcd snapshot") {
		t.Errorf("berth snapshot extract-etcd said:\n%s", out)
	}
	b, err := os.ReadFile(db)
	if err != nil || len(b) < 4096 {
		t.Fatalf("the extracted etcd snapshot: %d bytes, %v", len(b), err)
	}
}
