package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// FakePullFunc decides what a Fake pull finds: it returns the manifest
// digest of ref at the registry opts describe, or an error (wrap
// ErrImageNotFound for an image the registry lacks).
type FakePullFunc func(ctx context.Context, ref string, opts PullOptions) (digest string, err error)

// SetPull makes fn answer every Pull; without it pulls fail with
// ErrImageNotFound, unless FakeOptions.AnyImage is set.
func (f *Fake) SetPull(fn FakePullFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pull = fn
}

// AddImageDigest puts image ref (normalized) into the fake's store with
// manifest digest digest.
func (f *Fake) AddImageDigest(ref, digest string) error {
	name, err := NormalizeImageRef(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[name] = Image{Name: name, Digest: digest, Size: 1 << 20, CreatedAt: time.Now()}
	return nil
}

// SetImageCreated backdates image ref, for tests of image cleanup.
func (f *Fake) SetImageCreated(ref string, at time.Time) error {
	name, err := NormalizeImageRef(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	im, ok := f.images[name]
	if !ok {
		return fmt.Errorf("fake runtime: image %s: %w", name, ErrImageNotFound)
	}
	im.CreatedAt = at
	f.images[name] = im
	return nil
}

// Pull asks the SetPull function for ref and stores what it finds, under
// opts.Name when set. Progress is reported once, complete.
func (f *Fake) Pull(ctx context.Context, ref string, opts PullOptions) (Image, error) {
	name, err := NormalizeImageRef(ref)
	if err != nil {
		return Image{}, err
	}
	f.mu.Lock()
	pull := f.pull
	err = f.fail("Pull")
	f.mu.Unlock()
	if err != nil {
		return Image{}, err
	}
	if pull == nil && f.sim.AnyImage {
		pull = func(_ context.Context, ref string, _ PullOptions) (string, error) { return anyImageDigest(ref), nil }
	}
	if pull == nil {
		return Image{}, fmt.Errorf("fake runtime: pull %s: no registry: %w", name, ErrImageNotFound)
	}
	digest, err := pull(ctx, name, opts)
	if err != nil {
		return Image{}, fmt.Errorf("fake runtime: pull %s: %w", name, err)
	}
	if opts.Name != "" {
		if name, err = NormalizeImageRef(opts.Name); err != nil {
			return Image{}, err
		}
	} else if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[:i]
	}
	im := Image{Name: name, Digest: digest, Size: 1 << 20, CreatedAt: time.Now()}
	if opts.Progress != nil {
		opts.Progress(Progress{Done: im.Size, Total: im.Size})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[name] = im
	return im, nil
}

// Push records that ref was pushed; ErrImageNotFound if it is missing.
func (f *Fake) Push(ctx context.Context, ref string, opts PushOptions) error {
	name, err := NormalizeImageRef(ref)
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
		return fmt.Errorf("fake runtime: image %s is not on this node: %w", name, ErrImageNotFound)
	}
	if opts.Progress != nil {
		opts.Progress(Progress{Done: im.Size, Total: im.Size})
	}
	f.pushed = append(f.pushed, name)
	return nil
}

// Pushed returns the names of the images pushed so far, in order.
func (f *Fake) Pushed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.pushed...)
}

// RemoveImage forgets image ref.
func (f *Fake) RemoveImage(ctx context.Context, ref string) error {
	name, err := NormalizeImageRef(ref)
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
