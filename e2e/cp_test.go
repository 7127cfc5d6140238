package e2e

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCp copies a file out of a running task, a directory into it (read
// back with exec), a tar stream out; a symlink that points out of the
// container is not followed out, and a missing path is a clear error.
func TestCp(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	// A file on the host that the container's symlinks name.
	hostDir := filepath.Join(c.dir, "host-only")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "secret"), []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	compose := `
services:
  box:
    image: localhost/busybox:latest
    command: ["sh", "-c", "echo hello from box > /data.txt; mkdir -p /tree/sub; echo deep > /tree/sub/f; ln -s ` + hostDir + `/secret /hostlink; ln -s ../../../..` + hostDir + ` /updir; touch /ready; sleep 3600"]
  ro:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    read_only: true
    tmpfs: [/scratch]
`
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", compose), "-p", "cpy")
	c.waitRunning("cpy/box", 1, 60*time.Second)
	c.waitRunning("cpy/ro", 1, 60*time.Second)
	eventually(t, 30*time.Second, func() (bool, string) {
		out, errOut, err := c.berth("exec", "cpy/box", "--", "ls", "/ready")
		return err == nil, out + errOut
	})

	local := t.TempDir()
	// A file out.
	c.mustBerth("cp", "cpy/box:/data.txt", filepath.Join(local, "out.txt"))
	if b, err := os.ReadFile(filepath.Join(local, "out.txt")); err != nil || string(b) != "hello from box\n" {
		t.Errorf("copied out: %q, %v; want the container's file", b, err)
	}

	// A directory in, read back through exec.
	site := filepath.Join(local, "site")
	if err := os.MkdirAll(filepath.Join(site, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>copied in</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "sub", "private"), []byte("p"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.mustBerth("cp", site, "cpy/box:/srv")
	if out := c.mustBerth("exec", "cpy/box", "--", "cat", "/srv/index.html"); out != "<h1>copied in</h1>" {
		t.Errorf("exec cat of the copied file: %q", out)
	}
	if out := c.mustBerth("exec", "cpy/box", "--", "stat", "-c", "%a", "/srv/sub/private"); strings.TrimSpace(out) != "600" {
		t.Errorf("mode of the copied file: %q, want 600", out)
	}

	// A read-only root takes files only in its writable mounts.
	_, stderr, err := c.berth("cp", filepath.Join(local, "out.txt"), "cpy/ro:/etc/out.txt")
	if err == nil || !strings.Contains(stderr, "read-only") {
		t.Errorf("cp onto a read-only root: %v, stderr %q; want it refused as read-only", err, stderr)
	}
	c.mustBerth("cp", filepath.Join(local, "out.txt"), "cpy/ro:/scratch/")
	if out := c.mustBerth("exec", "cpy/ro", "--", "cat", "/scratch/out.txt"); out != "hello from box\n" {
		t.Errorf("file copied into the tmpfs of a read-only container: %q", out)
	}

	// A tar stream out.
	stdout, stderr, err := c.berth("cp", "cpy/box:/tree", "-")
	if err != nil {
		t.Fatalf("cp to -: %v\n%s", err, stderr)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader([]byte(stdout)))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("cp to - wrote no tar archive: %v", err)
		}
		names = append(names, hdr.Name)
	}
	if want := []string{"tree/", "tree/sub/", "tree/sub/f"}; !slices.Equal(names, want) {
		t.Errorf("archive holds %q, want %q", names, want)
	}

	// Symlinks to the host's file resolve inside the container, where
	// there is no such file.
	for _, p := range []string{"/hostlink", "/updir/secret"} {
		_, stderr, err := c.berth("cp", "cpy/box:"+p, filepath.Join(local, "leak"))
		if err == nil || !strings.Contains(stderr, "no such file or directory in the container") {
			t.Errorf("cp of %s: %v, stderr %q; want the path not found in the container", p, err, stderr)
		}
		if b, err := os.ReadFile(filepath.Join(local, "leak")); err == nil {
			t.Fatalf("cp of %s followed the symlink out of the container: read %q", p, b)
		}
	}
	// A missing path names itself.
	_, stderr, err = c.berth("cp", "cpy/box:/no/such/file", local)
	if err == nil || !strings.Contains(stderr, "/no/such/file") || !strings.Contains(stderr, "no such file or directory in the container") {
		t.Errorf("cp of a missing path: %v, stderr %q", err, stderr)
	}
	c.mustBerth("delete", "cpy")
}
