package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/crypto/bcrypt"

	ctdruntime "github.com/berthproject/berth/agent/runtime/containerd"
	"github.com/berthproject/berth/internal/testimage"
)

// testRegistry is Debian's docker-registry serving plain HTTP on loopback,
// with its storage in a temporary directory.
type testRegistry struct {
	t       testing.TB
	dir     string
	host    string // 127.0.0.1:port
	user    string
	proc    *proc
	withPwd bool
}

// startRegistry starts a registry; with a password it requires basic
// authentication as user (an htpasswd file with a bcrypt hash).
func startRegistry(t testing.TB, user, password string) *testRegistry {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("docker-registry is not installed: run hack/setup-host.sh")
	}
	r := &testRegistry{t: t, dir: t.TempDir(), host: fmt.Sprintf("127.0.0.1:%d", freePort(t)), user: user, withPwd: password != ""}
	r.start(password)
	return r
}

// start (re)starts the registry on its port and storage, accepting
// password.
func (r *testRegistry) start(password string) {
	r.t.Helper()
	auth := ""
	if r.withPwd {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			r.t.Fatal(err)
		}
		htpasswd := filepath.Join(r.dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.user+":"+string(hash)+"\n"), 0o600); err != nil {
			r.t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", htpasswd)
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n%s",
		filepath.Join(r.dir, "storage"), r.host, auth)
	path := filepath.Join(r.dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if r.proc != nil {
		r.proc.stop()
	}
	r.proc = startProc(r.t, "registry", nil, "docker-registry", "serve", path)
	eventually(r.t, 20*time.Second, func() (bool, string) {
		out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+r.host+"/v2/").Output()
		code := strings.TrimSpace(string(out))
		return err == nil && (code == "200" || code == "401"), fmt.Sprintf("registry at %s answers %q (%v)", r.host, code, err)
	})
}

// login runs `berth login` with the password on standard input.
func (c *cluster) login(registry, user, password string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin, args := command(c.netns, "--config", c.configPath, "login", registry, "-u", user, "--password-stdin")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(password)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// writeBusyboxArchive writes the busybox test image named ref into the
// cluster's directory and returns the archive's path.
func (c *cluster) writeBusyboxArchive(ref string) string {
	c.t.Helper()
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		c.t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := testimage.WriteOCIArchive(&buf, ref, files, testimage.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}); err != nil {
		c.t.Fatal(err)
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(ref) + ".tar"
	return c.writeFile(name, buf.String())
}

// removeImage deletes an image from a machine's containerd namespace, as
// if it had never been there.
func removeImage(t testing.TB, machine, ref string) {
	t.Helper()
	client, err := containerd.New(ctdruntime.DefaultAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), namespace+"-"+machine)
	// Synchronous: the garbage collection runs before it returns, so the
	// image's content is gone too and a later pull fetches it again.
	if err := client.ImageService().Delete(ctx, ref, images.SynchronousDelete()); err != nil {
		t.Fatalf("removing %s from %s: %v", ref, machine, err)
	}
}

const registryCompose = `services:
  web:
    image: %s
    command: ["sleep", "3600"]
    deploy:
      replicas: 1
      placement:
        constraints: ["node.name==beta"]
`

// TestRegistry pushes an image from alpha to a real registry, and runs it
// on beta, which has to pull it from the registry: once without
// authentication, once with a password that is rotated under the stored
// credential.
func TestRegistry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		password string
	}{
		{"no auth", ""},
		{"htpasswd", "right-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t, "ann", tc.password)
			c := newCluster(t)
			c.startMachine("alpha")
			c.startMachine("beta")
			c.mustBerth("cluster", "settings", "--insecure-registry", reg.host)

			image := reg.host + "/busybox:1"
			full := image
			c.mustBerth("image", "import", c.writeBusyboxArchive(image), "--node", "alpha")

			if tc.password != "" {
				out, err := c.login(reg.host, "ann", "wrong-password")
				if err == nil || !strings.Contains(out, reg.host) || !strings.Contains(strings.ToLower(out), "unauthorized") {
					t.Fatalf("login with a wrong password: %v\n%s", err, out)
				}
				if out, err := c.login(reg.host, "ann", tc.password); err != nil {
					t.Fatalf("login: %v\n%s", err, out)
				}
				if out := c.mustBerth("registry", "ls"); !strings.Contains(out, reg.host) || !strings.Contains(out, "ann") || strings.Contains(out, tc.password) {
					t.Errorf("registry ls:\n%s", out)
				}
			}
			if out := c.mustBerth("push", image, "--node", "alpha"); !strings.Contains(out, "alpha: done") {
				t.Errorf("push output:\n%s", out)
			}
			// Alpha forgets it: beta can only get it from the registry.
			removeImage(t, "alpha", full)

			compose := c.writeFile("reg/compose.yaml", fmt.Sprintf(registryCompose, image))
			if tc.password != "" {
				// The password changes under the stored credential: beta's
				// pull is refused, and says so.
				reg.start("rotated-password")
				c.mustBerth("apply", "-f", compose, "-p", "reg")
				eventually(t, time.Minute, func() (bool, string) {
					for _, tk := range c.ps("reg", "--all") {
						msg := strings.ToLower(tk.Error + " " + tk.Message)
						if (tk.State == "rejected" || tk.State == "failed") && strings.Contains(msg, reg.host) &&
							(strings.Contains(msg, "401") || strings.Contains(msg, "unauthorized")) {
							return true, ""
						}
					}
					return false, fmt.Sprintf("no task was refused by %s: %+v", reg.host, c.ps("reg", "--all"))
				})
				for _, tk := range c.ps("reg") {
					if tk.State == "running" {
						t.Fatalf("a task runs without the image: %+v", tk)
					}
				}
				if out, err := c.login(reg.host, "ann", "rotated-password"); err != nil {
					t.Fatalf("login: %v\n%s", err, out)
				}
			} else {
				c.mustBerth("apply", "-f", compose, "-p", "reg")
			}
			c.waitRunningOn("reg/web", "beta", 1, 2*time.Minute)
			if out := c.mustBerth("image", "ls", "--node", "beta"); !strings.Contains(out, "busybox") {
				t.Errorf("beta's images:\n%s", out)
			}
			// The same file again changes nothing: the pinned digest holds.
			if out := c.mustBerth("apply", "-f", compose, "-p", "reg", "--dry-run"); strings.Contains(out, "update") {
				t.Errorf("re-apply plans a change:\n%s", out)
			}
		})
	}
}
