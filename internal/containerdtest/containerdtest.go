// Package containerdtest helps tests that use a real containerd leave
// nothing behind.
package containerdtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// Snapshotter is the snapshotter Berth unpacks images with.
const Snapshotter = "overlayfs"

// CleanupNamespace deletes every container, task, image, lease, content
// blob and snapshot in ns, then ns itself.
func CleanupNamespace(client *containerd.Client, ns string) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	var errs []error
	report := func(what string, err error) {
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("clean up namespace %s: %s: %w", ns, what, err))
		}
	}

	conts, err := client.Containers(ctx)
	report("list containers", err)
	for _, c := range conts {
		if task, err := c.Task(ctx, nil); err == nil {
			_, err := task.Delete(ctx, containerd.WithProcessKill)
			report("delete task "+c.ID(), err)
		}
		report("delete container "+c.ID(), c.Delete(ctx, containerd.WithSnapshotCleanup))
	}
	imgs, err := client.ImageService().List(ctx)
	report("list images", err)
	for _, img := range imgs {
		report("delete image "+img.Name, client.ImageService().Delete(ctx, img.Name, images.SynchronousDelete()))
	}
	ls, err := client.LeasesService().List(ctx)
	report("list leases", err)
	for _, l := range ls {
		report("delete lease "+l.ID, client.LeasesService().Delete(ctx, l, leases.SynchronousDelete))
	}
	report("walk content", client.ContentStore().Walk(ctx, func(info content.Info) error {
		report("delete content "+info.Digest.String(), client.ContentStore().Delete(ctx, info.Digest))
		return nil
	}))
	// Snapshots go children first: a parent cannot go while it has any.
	sn := client.SnapshotService(Snapshotter)
	for range 10 {
		var keys []string
		report("walk snapshots", sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			keys = append(keys, info.Name)
			return nil
		}))
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			// A parent fails while children remain; the next round gets it.
			_ = sn.Remove(ctx, k)
		}
	}
	report("delete namespace", client.NamespaceService().Delete(ctx, ns))
	return errors.Join(errs...)
}
