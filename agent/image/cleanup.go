package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/berthproject/berth/agent/runtime"
	"golang.org/x/sys/unix"
)

// The default image cleanup thresholds, in percent of the disk used.
const (
	DefaultGCHighPercent = 85
	DefaultGCLowPercent  = 80
)

// CleanupRuntime is what Cleanup needs of the runtime: its containers,
// whose images stay, and its images.
type CleanupRuntime interface {
	List(ctx context.Context) ([]runtime.Status, error)
	ListImages(ctx context.Context) ([]runtime.Image, error)
	RemoveImage(ctx context.Context, ref string) error
}

// Cleanup removes images no container uses when the filesystem holding
// the image store is fuller than HighPercent, oldest first, until it is
// below LowPercent.
type Cleanup struct {
	Runtime CleanupRuntime
	// Dir is a directory on the filesystem to watch (containerd's root).
	Dir                     string
	HighPercent, LowPercent int
	// Usage measures the filesystem; default statfs of Dir.
	Usage func(dir string) (used, total uint64, err error)
	Log   *slog.Logger
}

// Once checks the disk and removes images when it is above HighPercent;
// it returns the names of the images it removed.
func (c *Cleanup) Once(ctx context.Context) ([]string, error) {
	usage := c.Usage
	if usage == nil {
		usage = statfs
	}
	used, total, err := usage(c.Dir)
	if err != nil {
		return nil, err
	}
	if total == 0 || used*100 <= uint64(c.HighPercent)*total {
		return nil, nil
	}
	// target is the low mark in bytes.
	target := uint64(c.LowPercent) * total / 100
	images, err := c.Runtime.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	containers, err := c.Runtime.List(ctx)
	if err != nil {
		return nil, err
	}
	inUse := map[string]bool{}
	for _, ct := range containers {
		inUse[ct.Image] = true
	}
	var removed []string
	var errs []error
	// Sizes overlap (images share layers), so the disk is measured again
	// after each removal rather than trusted to the sum.
	for _, im := range SelectUnused(images, inUse) {
		if err := c.Runtime.RemoveImage(ctx, im.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, im.Name)
		if c.Log != nil {
			c.Log.Info("removed an unused image to free disk space", "image", im.Name, "size", im.Size, "dir", c.Dir)
		}
		if used, _, err = usage(c.Dir); err == nil && used < target {
			break
		}
	}
	return removed, errors.Join(errs...)
}

// SelectUnused returns the images that may be removed, oldest first:
// those no container uses, by name or by digest (another name of a
// manifest in use frees nothing).
func SelectUnused(images []runtime.Image, inUse map[string]bool) []runtime.Image {
	usedDigests := map[string]bool{}
	for _, im := range images {
		if inUse[im.Name] {
			usedDigests[im.Digest] = true
		}
	}
	var out []runtime.Image
	for _, im := range images {
		if !inUse[im.Name] && !usedDigests[im.Digest] {
			out = append(out, im)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// statfs measures the filesystem holding dir: bytes used and its size.
func statfs(dir string) (used, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("image cleanup: measuring the disk of %s: %w", dir, err)
	}
	total = st.Blocks * uint64(st.Bsize)
	return total - st.Bfree*uint64(st.Bsize), total, nil
}
