package build

import (
	"context"
	"fmt"
)

// CacheUsage is BuildKit's build cache on this node.
type CacheUsage struct {
	// Running says the buildkitd runs; the rest is set only when it does.
	Running            bool
	Records            int
	Bytes, Reclaimable int64
}

// CacheUsage asks buildkitd for its disk usage. The Builder's own
// buildkitd starts with the first build: when it has not started, the
// answer is "not running" and nothing is started to measure it.
func (b *Builder) CacheUsage(ctx context.Context) (CacheUsage, error) {
	if b.daemon != nil && !b.daemon.started() {
		return CacheUsage{}, nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return CacheUsage{}, err
	}
	records, err := c.DiskUsage(ctx)
	if err != nil {
		return CacheUsage{Running: true}, fmt.Errorf("build cache usage: %w", err)
	}
	u := CacheUsage{Running: true, Records: len(records)}
	for _, r := range records {
		u.Bytes += r.Size
		if !r.InUse {
			u.Reclaimable += r.Size
		}
	}
	return u, nil
}

// started reports whether the daemon was started (and not stopped since).
func (d *daemon) started() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done != nil && !d.stopped
}
