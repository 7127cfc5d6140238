package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/containerd/containerd/v2/core/snapshots"
)

// TestMountImage mounts an image's layers read-only, and Release leaves
// no mount, directory or snapshot behind.
func TestMountImage(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	m, err := env.rt.MountImage(ctx, busyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			m.Release()
		}
	}()
	if !strings.HasPrefix(m.Digest, "sha256:") {
		t.Errorf("digest = %q", m.Digest)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "bin/busybox")); err != nil {
		t.Errorf("the image's files are not there: %v", err)
	}
	if err := os.WriteFile(filepath.Join(m.Dir, "written"), []byte("x"), 0o644); err == nil {
		t.Error("the image's view is writable")
	}
	views := func() int {
		n := 0
		sn := env.rt.client.SnapshotService(env.rt.cfg.Snapshotter)
		err := sn.Walk(env.rt.ctx(ctx), func(_ context.Context, info snapshots.Info) error {
			if strings.HasPrefix(info.Name, "berth-view-") {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := views(); n != 1 {
		t.Errorf("%d view snapshots while mounted, want 1", n)
	}
	released = true
	if err := m.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, err := os.Stat(m.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mount directory is still there: %v", err)
	}
	if n := views(); n != 0 {
		t.Errorf("%d view snapshots after Release, want 0", n)
	}
	if _, err := env.rt.MountImage(ctx, "localhost/absent:1"); !errors.Is(err, runtime.ErrImageNotFound) {
		t.Errorf("MountImage of a missing image: %v, want ErrImageNotFound", err)
	}
}
