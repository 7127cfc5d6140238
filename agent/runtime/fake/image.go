package fake

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/api/imageref"
)

// PullFunc decides what a Runtime pull finds: it returns the manifest
// digest of ref at the registry opts describe, or an error (wrap
// ErrImageNotFound for an image the registry lacks).
type PullFunc func(ctx context.Context, ref string, opts runtime.PullOptions) (digest string, err error)

// SetPull makes fn answer every Pull; without it pulls fail with
// ErrImageNotFound, unless Options.AnyImage is set.
func (f *Runtime) SetPull(fn PullFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pull = fn
}

// AddImageDigest puts image ref (normalized) into the fake's store with
// manifest digest digest.
func (f *Runtime) AddImageDigest(ref, digest string) error {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[name] = runtime.Image{Name: name, Digest: digest, Size: 1 << 20, CreatedAt: time.Now()}
	return nil
}

// SetImageCreated backdates image ref, for tests of image cleanup.
func (f *Runtime) SetImageCreated(ref string, at time.Time) error {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im, ok := f.images[name]
	if !ok {
		return fmt.Errorf("fake runtime: image %s: %w", name, runtime.ErrImageNotFound)
	}
	im.CreatedAt = at
	f.images[name] = im
	return nil
}

// Pull asks the SetPull function for ref and stores what it finds, under
// opts.Name when set. Progress is reported once, complete.
func (f *Runtime) Pull(ctx context.Context, ref string, opts runtime.PullOptions) (runtime.Image, error) {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return runtime.Image{}, err
	}
	f.mu.Lock()
	pull := f.pull
	err = f.fail("Pull")
	f.mu.Unlock()
	if err != nil {
		return runtime.Image{}, err
	}
	if pull == nil && f.sim.AnyImage {
		pull = func(_ context.Context, ref string, _ runtime.PullOptions) (string, error) {
			return anyImageDigest(ref), nil
		}
	}
	if pull == nil {
		return runtime.Image{}, fmt.Errorf("fake runtime: pull %s: no registry: %w", name, runtime.ErrImageNotFound)
	}
	digest, err := pull(ctx, name, opts)
	if err != nil {
		return runtime.Image{}, fmt.Errorf("fake runtime: pull %s: %w", name, err)
	}
	if opts.Name != "" {
		if name, err = imageref.Normalize(opts.Name); err != nil {
			return runtime.Image{}, err
		}
	} else if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[:i]
	}
	im := runtime.Image{Name: name, Digest: digest, Size: 1 << 20, CreatedAt: time.Now()}
	if opts.Progress != nil {
		opts.Progress(runtime.Progress{Done: im.Size, Total: im.Size})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[name] = im
	return im, nil
}

// Push records that ref was pushed; ErrImageNotFound if it is missing.
func (f *Runtime) Push(ctx context.Context, ref string, opts runtime.PushOptions) error {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Push"); err != nil {
		return err
	}
	im, ok := f.images[name]
	if !ok {
		return fmt.Errorf("fake runtime: image %s is not on this node: %w", name, runtime.ErrImageNotFound)
	}
	if opts.Progress != nil {
		opts.Progress(runtime.Progress{Done: im.Size, Total: im.Size})
	}
	f.pushed = append(f.pushed, name)
	return nil
}

// Pushed returns the names of the images pushed so far, in order.
func (f *Runtime) Pushed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.pushed...)
}

// RemoveImage forgets image ref.
func (f *Runtime) RemoveImage(ctx context.Context, ref string) error {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("RemoveImage"); err != nil {
		return err
	}
	delete(f.images, name)
	return nil
}
