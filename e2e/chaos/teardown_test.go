package chaos

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/network"
	"github.com/berthproject/berth/agent/network/nspath"
	"github.com/berthproject/berth/internal/containerdtest"
	containerd "github.com/containerd/containerd/v2/client"
)

// defaultContainerd is the host's containerd socket.
const defaultContainerd = "/run/containerd/containerd.sock"

func netnsPath(ns string) string { return filepath.Join(network.DefaultNetNSDir, ns) }

// newNetNS makes network namespace ns with its loopback up. The caller
// deletes it (deleteNetNS) after the processes in it stopped.
func newNetNS(t *testing.T, ns string) {
	t.Helper()
	must(t, "ip", "netns", "add", ns)
	must(t, "ip", "-n", ns, "link", "set", "lo", "up")
}

// deleteNetNS deletes network namespace ns, and with it every interface,
// route and rule in it.
func deleteNetNS(t *testing.T, ns string) {
	if err := nspath.Remove(netnsPath(ns)); err != nil {
		t.Errorf("deleting netns %s: %v", ns, err)
	}
}

// teardown runs after every process of the cluster stopped: it removes
// the containers, their network namespaces and tmpfs files, then the
// agents' own namespaces with their bridges, veths, overlays and rules.
func (c *cluster) teardown() {
	for addr := range c.containerds {
		if err := cleanContainerd(addr, c.ctdNS); err != nil {
			c.t.Errorf("cleanup: %v", err)
		}
	}
	for _, a := range c.agents {
		defer deleteNetNS(c.t, a.netns)
		err := nspath.Do(netnsPath(a.netns), func() error { return network.Remove(a.name, a.dir, "") })
		if err != nil {
			c.t.Errorf("cleanup of node %s network: %v", a.name, err)
		}
		if a.id == "" {
			continue
		}
		dirs, err := files.NewDirs(files.DefaultRoot, a.id)
		if err != nil {
			continue
		}
		left, _ := dirs.List()
		for _, id := range left {
			if err := dirs.Remove(id); err != nil {
				c.t.Errorf("cleanup of node %s: files of %s: %v", a.name, id, err)
			}
		}
		if err := os.Remove(filepath.Dir(dirs.Dir("x"))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.t.Errorf("cleanup of node %s: %v", a.name, err)
		}
	}
	for _, m := range c.mounts {
		if err := syscall.Unmount(m, 0); err != nil {
			c.t.Errorf("cleanup: unmounting %s: %v", m, err)
		}
	}
}

// cleanContainerd deletes every container, image and snapshot of
// namespace ns in the containerd at addr, then the shims containerd 1.6
// sometimes leaves running with nothing under them.
func cleanContainerd(addr, ns string) error {
	if _, err := os.Stat(addr); err != nil {
		return nil // a private containerd that is gone already
	}
	client, err := containerd.New(addr)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := containerdtest.CleanupNamespace(client, ns); err != nil {
		return err
	}
	for _, pid := range shims(ns) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

// shims are the containerd shims serving namespace ns.
func shims(ns string) []int {
	var out []int
	for pid, args := range processes() {
		if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			if i := slices.Index(args, "-namespace"); i >= 0 && i+1 < len(args) && args[i+1] == ns {
				out = append(out, pid)
			}
		}
	}
	return out
}

// processes maps the machine's processes to their command lines.
func processes() map[int][]string {
	out := map[int][]string{}
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		out[pid] = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	return out
}

// countLeaks counts what the cluster left after its cleanup: processes
// naming its directory or containerd namespace, network namespaces of the
// cluster or of its nodes' containers, mounts under its directory or its
// nodes' tmpfs root, and containers in its containerd namespace. Each is
// logged, then removed where that is safe, so one leak does not spoil the
// next subtest.
func (c *cluster) countLeaks() int {
	var leaks []string
	for pid, args := range processes() {
		line := strings.Join(args, " ")
		if strings.Contains(line, c.dir) || slices.Contains(args, c.ctdNS) {
			leaks = append(leaks, fmt.Sprintf("process %d: %s", pid, line))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	entries, _ := os.ReadDir(network.DefaultNetNSDir)
	prefixes := []string{c.hub}
	for _, a := range c.agents {
		prefixes = append(prefixes, a.netns, network.NetNSPrefix(a.name))
	}
	for _, e := range entries {
		for _, p := range prefixes {
			if strings.HasPrefix(e.Name(), p) {
				leaks = append(leaks, "network namespace "+e.Name())
				nspath.Remove(netnsPath(e.Name()))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 5 {
				continue
			}
			mine := strings.HasPrefix(f[4], c.dir)
			for _, a := range c.agents {
				mine = mine || (a.id != "" && strings.HasPrefix(f[4], filepath.Join(files.DefaultRoot, a.id)))
			}
			if mine {
				leaks = append(leaks, "mount "+f[4])
				syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
	for addr := range c.containerds {
		if n, err := containersLeft(addr, c.ctdNS); err != nil {
			c.t.Errorf("counting containers left: %v", err)
		} else if n > 0 {
			leaks = append(leaks, fmt.Sprintf("%d containers in namespace %s of %s", n, c.ctdNS, addr))
		}
	}
	for _, l := range leaks {
		c.t.Errorf("leaked: %s", l)
	}
	return len(leaks)
}

// containersLeft counts the containers of namespace ns.
func containersLeft(addr, ns string) (int, error) {
	if _, err := os.Stat(addr); err != nil {
		return 0, nil
	}
	client, err := containerd.New(addr, containerd.WithDefaultNamespace(ns))
	if err != nil {
		return 0, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Containers(ctx)
	return len(cs), err
}
