package containerd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/api/imageref"
)

var _ runtime.ImageFiles = (*Runtime)(nil)

// MountImage mounts a read-only view snapshot of image ref's layers in a
// temporary directory: no copy, and nothing in the image runs. A lease
// holds the view until Release, so containerd's garbage collector leaves
// it alone meanwhile and takes it if the agent dies before Release.
func (c *Runtime) MountImage(ctx context.Context, ref string) (_ runtime.ImageMount, retErr error) {
	ctx = c.ctx(ctx)
	name, err := imageref.Normalize(ref)
	if err != nil {
		return runtime.ImageMount{}, err
	}
	img, err := c.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		return runtime.ImageMount{}, fmt.Errorf("runtime: image %s is not on this node: %w", name, runtime.ErrImageNotFound)
	}
	if err != nil {
		return runtime.ImageMount{}, fmt.Errorf("runtime: look up image %s: %w", name, err)
	}
	ctx, done, err := c.client.WithLease(ctx)
	if err != nil {
		return runtime.ImageMount{}, fmt.Errorf("runtime: lease for image %s: %w", name, err)
	}
	var cleanups []func() error
	release := func() error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		errs = append(errs, done(context.WithoutCancel(ctx)))
		return errors.Join(errs...)
	}
	defer func() {
		if retErr != nil {
			_ = release()
		}
	}()
	unpacked, err := img.IsUnpacked(ctx, c.cfg.Snapshotter)
	if err == nil && !unpacked {
		err = img.Unpack(ctx, c.cfg.Snapshotter)
	}
	if err != nil {
		return runtime.ImageMount{}, fmt.Errorf("runtime: unpack image %s: %w", name, err)
	}
	diffs, err := img.RootFS(ctx)
	if err != nil {
		return runtime.ImageMount{}, fmt.Errorf("runtime: layers of image %s: %w", name, err)
	}
	sn := c.client.SnapshotService(c.cfg.Snapshotter)
	key := "berth-view-" + img.Target().Digest.Encoded()[:12] + "-" + rand.Text()[:8]
	mounts, err := sn.View(ctx, key, identity.ChainID(diffs).String())
	if err != nil {
		return runtime.ImageMount{}, fmt.Errorf("runtime: view of image %s: %w", name, err)
	}
	cleanups = append(cleanups, func() error { return sn.Remove(context.WithoutCancel(ctx), key) })
	dir, err := os.MkdirTemp("", "berth-image-")
	if err != nil {
		return runtime.ImageMount{}, fmt.Errorf("runtime: %w", err)
	}
	cleanups = append(cleanups, func() error { return os.Remove(dir) })
	if err := mount.All(mounts, dir); err != nil {
		return runtime.ImageMount{}, fmt.Errorf("runtime: mount image %s: %w", name, err)
	}
	cleanups = append(cleanups, func() error { return mount.UnmountAll(dir, 0) })
	return runtime.ImageMount{Dir: dir, Digest: img.Target().Digest.String(), Release: release}, nil
}
