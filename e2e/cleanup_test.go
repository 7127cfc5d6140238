package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/network"
	"github.com/berthproject/berth/agent/runtime"
	ctdruntime "github.com/berthproject/berth/agent/runtime/containerd"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/internal/containerdtest"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// namespace is the containerd namespace of every e2e agent, so that the
// suite never touches a developer's own containers and can delete all it
// made at the end.
var namespace = "berth-e2e"

// nodeID reads the node id from an agent's certificate.
func nodeID(t testing.TB, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "pki", "node.crt"))
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	who, err := identity.FromCertificate(cert)
	if err != nil {
		return ""
	}
	return who.ID
}

// cleanupNode removes whatever an agent left: its containers (stopped at
// once), their snapshots, log files and secret tmpfs mounts, its network
// attachments, overlay and rules. Its volumes go with the test's
// directory.
// It runs after the agent process has stopped.
func cleanupNode(t testing.TB, name, dataDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if id := nodeID(t, dataDir); id != "" {
		dirs, err := files.NewDirs(files.DefaultRoot, id)
		if err != nil {
			t.Fatalf("cleanup of node %s: %v", name, err)
		}
		rt, err := ctdruntime.New(ctx, ctdruntime.Config{Namespace: namespace, Owner: id, StateDir: filepath.Join(dataDir, "runtime"), Files: dirs})
		if err != nil {
			t.Errorf("cleanup of node %s: %v", name, err)
		} else {
			containers, err := rt.List(ctx)
			if err != nil {
				t.Errorf("cleanup of node %s: %v", name, err)
			}
			for _, c := range containers {
				// A deadline per container: a node of a few hundred
				// containers on a loaded machine takes minutes in all.
				cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := rt.Stop(cctx, c.ID, "SIGKILL", 0); err != nil && !errors.Is(err, runtime.ErrNotFound) {
					t.Errorf("cleanup of node %s: stopping %s: %v", name, c.ID, err)
				}
				if err := rt.Remove(cctx, c.ID); err != nil {
					t.Errorf("cleanup of node %s: removing %s: %v", name, c.ID, err)
				}
				cancel()
			}
			rt.Close()
		}
		// Mounts of containers that went before the agent could unmount
		// them (a killed agent).
		left, err := dirs.List()
		if err != nil {
			t.Errorf("cleanup of node %s: %v", name, err)
		}
		for _, c := range left {
			if err := dirs.Remove(c); err != nil {
				t.Errorf("cleanup of node %s: secret files of %s: %v", name, c, err)
			}
		}
		if err := os.Remove(filepath.Dir(dirs.Dir("x"))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup of node %s: %v", name, err)
		}
	}
	if err := network.Remove(name, dataDir, ""); err != nil {
		t.Errorf("cleanup of node %s network: %v", name, err)
	}
}

// nodeContainers lists the containers of node id in the e2e namespace.
func nodeContainers(t testing.TB, id string) []runtime.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := ctdruntime.New(ctx, ctdruntime.Config{Namespace: namespace, Owner: id, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	cs, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// countContainers counts the containers of node id.
func countContainers(t testing.TB, id string) int { return len(nodeContainers(t, id)) }

// activeSnapshots counts the writable (container) snapshots in the e2e
// namespace; image layers are committed snapshots and do not count.
func activeSnapshots(t testing.TB) int {
	t.Helper()
	client, err := containerd.New(ctdruntime.DefaultAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	n := 0
	err = client.SnapshotService(containerdtest.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runningPids maps the running containers of node id to their pids.
func runningPids(t testing.TB, id string) map[string]uint32 {
	out := map[string]uint32{}
	for _, c := range nodeContainers(t, id) {
		if c.State == runtime.StateRunning {
			out[c.ID] = c.Pid
		}
	}
	return out
}

// killTask kills the process of a task's container with SIGKILL.
func (c *cluster) killTask(victim task) {
	c.t.Helper()
	pid, ok := runningPids(c.t, nodeID(c.t, filepath.Join(c.dir, "agent-"+victim.Node)))[victim.ID]
	if !ok {
		c.t.Fatalf("no running container for task %s on %s", victim.ID, victim.Node)
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		c.t.Fatalf("killing the process %d of task %s: %v", pid, victim.ID, err)
	}
}
