package containerd

import (
	"context"
	"fmt"

	"github.com/berthproject/berth/agent/runtime"
)

var _ runtime.ContainerUsage = (*Runtime)(nil)

// WritableBytes is the size of container id's writable layer, as its
// snapshotter counts it.
func (c *Runtime) WritableBytes(ctx context.Context, id string) (int64, error) {
	ctx = c.ctx(ctx)
	info, err := c.load(ctx, id)
	if err != nil {
		return 0, err
	}
	if info.SnapshotKey == "" {
		return 0, nil
	}
	snapshotter := info.Snapshotter
	if snapshotter == "" {
		snapshotter = c.cfg.Snapshotter
	}
	u, err := c.client.SnapshotService(snapshotter).Usage(ctx, info.SnapshotKey)
	if err != nil {
		return 0, fmt.Errorf("runtime: disk usage of container %s: %w", id, err)
	}
	return u.Size, nil
}
