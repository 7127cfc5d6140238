package containerd

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/api/imageref"
)

// progressPeriod is how often a transfer's progress is sampled.
const progressPeriod = 200 * time.Millisecond

// Pull fetches ref through the resolver opts describe, unpacks it for the
// snapshotter and, with opts.Name, stores it under that name.
func (c *Runtime) Pull(ctx context.Context, ref string, opts runtime.PullOptions) (runtime.Image, error) {
	ctx = c.ctx(ctx)
	name, err := imageref.Normalize(ref)
	if err != nil {
		return runtime.Image{}, err
	}
	tracker := newTransferTracker(c.client.ContentStore())
	stop := tracker.sample(ctx, opts.Progress)
	res, closeIdle := resolver(opts.Registry)
	defer closeIdle()
	img, err := c.client.Pull(ctx, name,
		ctd.WithResolver(res),
		ctd.WithPullUnpack,
		ctd.WithPullSnapshotter(c.cfg.Snapshotter),
		ctd.WithImageHandler(images.HandlerFunc(tracker.seen)),
	)
	stop()
	if err != nil {
		return runtime.Image{}, fmt.Errorf("runtime: pull %s: %w", name, err)
	}
	record := img.Metadata()
	if opts.Name != "" {
		if record, err = c.tag(ctx, opts.Name, record); err != nil {
			return runtime.Image{}, err
		}
	}
	size, err := ctd.NewImage(c.client, record).Size(ctx)
	if err != nil {
		return runtime.Image{}, fmt.Errorf("runtime: size of image %s: %w", record.Name, err)
	}
	return runtime.Image{Name: record.Name, Digest: record.Target.Digest.String(), Size: size, CreatedAt: record.CreatedAt}, nil
}

// tag makes ref name the image pulled as from, and drops from's own record
// when it is a different name (a pinned "name@digest" record is of no use
// once the tag points at the same manifest).
func (c *Runtime) tag(ctx context.Context, ref string, from images.Image) (images.Image, error) {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return images.Image{}, err
	}
	svc := c.client.ImageService()
	next := images.Image{Name: name, Target: from.Target, Labels: from.Labels}
	rec, err := svc.Update(ctx, next, "target", "labels")
	if errdefs.IsNotFound(err) {
		rec, err = svc.Create(ctx, next)
	}
	if err != nil {
		return images.Image{}, fmt.Errorf("runtime: name image %s: %w", name, err)
	}
	if from.Name != name {
		if err := svc.Delete(ctx, from.Name); err != nil && !errdefs.IsNotFound(err) {
			return images.Image{}, fmt.Errorf("runtime: drop pinned record %s: %w", from.Name, err)
		}
	}
	return rec, nil
}

// Push sends image ref and every blob it names to the registry opts
// describe.
func (c *Runtime) Push(ctx context.Context, ref string, opts runtime.PushOptions) error {
	ctx = c.ctx(ctx)
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	img, err := c.client.ImageService().Get(ctx, name)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: image %s is not on this node: %w", name, runtime.ErrImageNotFound)
	}
	if err != nil {
		return fmt.Errorf("runtime: look up image %s: %w", name, err)
	}
	var total, done int64
	var mu sync.Mutex
	report := func(desc ocispec.Descriptor, finished bool) {
		if opts.Progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if finished {
			done += desc.Size
		} else {
			total += desc.Size
		}
		opts.Progress(runtime.Progress{Done: done, Total: total})
	}
	wrapper := func(h images.Handler) images.Handler {
		return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			report(desc, false)
			children, err := h.Handle(ctx, desc)
			if err == nil {
				report(desc, true)
			}
			return children, err
		})
	}
	res, closeIdle := resolver(opts.Registry)
	defer closeIdle()
	err = c.client.Push(ctx, name, img.Target,
		ctd.WithResolver(res),
		ctd.WithImageHandlerWrapper(wrapper),
	)
	if err != nil {
		return fmt.Errorf("runtime: push %s: %w", name, err)
	}
	return nil
}

// RemoveImage deletes the image record ref; containerd's garbage
// collector frees the content and snapshots nothing else holds.
func (c *Runtime) RemoveImage(ctx context.Context, ref string) error {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	// Synchronous, so the disk space is free when it returns (image
	// cleanup measures it again right after).
	err = c.client.ImageService().Delete(c.ctx(ctx), name, images.SynchronousDelete())
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: remove image %s: %w", name, err)
	}
	return nil
}

// resolver reaches the registry reg describes; closeIdle drops the
// connections it kept open, once the transfer is over.
func resolver(reg runtime.Registry) (res remotes.Resolver, closeIdle func()) {
	var auth docker.Authorizer
	if reg.Username != "" || reg.Secret != "" {
		user, secret := reg.Username, reg.Secret
		auth = docker.NewDockerAuthorizer(docker.WithAuthCreds(func(string) (string, string, error) {
			return user, secret, nil
		}))
	}
	transport := docker.DefaultHTTPTransport(reg.TLS)
	client := &http.Client{Transport: transport}
	// Plain HTTP only for a registry the operator listed as insecure, even
	// on loopback, where Docker would allow it unasked.
	plain := func(string) (bool, error) { return reg.PlainHTTP, nil }
	if reg.Host == "" {
		return docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(
			docker.WithClient(client), docker.WithAuthorizer(auth), docker.WithPlainHTTP(plain))}), transport.CloseIdleConnections
	}
	scheme := "https"
	if reg.PlainHTTP {
		scheme = "http"
	}
	host := docker.RegistryHost{
		Client:       client,
		Authorizer:   auth,
		Host:         reg.Host,
		Scheme:       scheme,
		Path:         "/v2",
		Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush,
		Header:       reg.Header,
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: func(string) ([]docker.RegistryHost, error) {
		return []docker.RegistryHost{host}, nil
	}}), transport.CloseIdleConnections
}

// transferTracker adds up a pull's progress: the blobs the pull walks,
// each done when in the store or as far as its ingest went.
type transferTracker struct {
	store content.Store
	mu    sync.Mutex
	descs map[string]ocispec.Descriptor
}

func newTransferTracker(store content.Store) *transferTracker {
	return &transferTracker{store: store, descs: map[string]ocispec.Descriptor{}}
}

// seen is an image handler: it notes each descriptor the pull visits.
func (t *transferTracker) seen(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	t.mu.Lock()
	t.descs[desc.Digest.String()] = desc
	t.mu.Unlock()
	return nil, nil
}

// sample calls fn with the progress every progressPeriod until the
// returned function is called, which reports once more and waits.
func (t *transferTracker) sample(ctx context.Context, fn func(runtime.Progress)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressPeriod)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fn(t.progress(context.WithoutCancel(ctx)))
				return
			case <-tick.C:
				fn(t.progress(ctx))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (t *transferTracker) progress(ctx context.Context) runtime.Progress {
	t.mu.Lock()
	descs := make([]ocispec.Descriptor, 0, len(t.descs))
	for _, d := range t.descs {
		descs = append(descs, d)
	}
	t.mu.Unlock()
	active := map[string]int64{}
	if statuses, err := t.store.ListStatuses(ctx); err == nil {
		for _, st := range statuses {
			active[st.Expected.String()] = st.Offset
		}
	}
	var p runtime.Progress
	for _, d := range descs {
		p.Total += d.Size
		if off, ok := active[d.Digest.String()]; ok {
			p.Done += off
			continue
		}
		if _, err := t.store.Info(ctx, d.Digest); err == nil {
			p.Done += d.Size
		}
	}
	return p
}

// Namespace is the containerd namespace of the runtime's containers and
// images.
func (c *Runtime) Namespace() string { return c.cfg.Namespace }
