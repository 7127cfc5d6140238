package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// ContainerdConfig configures a Containerd runtime.
type ContainerdConfig struct {
	// Address of containerd's socket; default /run/containerd/containerd.sock.
	Address string
	// Namespace in containerd for Berth's containers and images; default "berth".
	Namespace string
	// Owner names this runtime instance, usually the node id. It is set as
	// label berth.owner on every container, and only containers with this
	// owner are listed, inspected, stopped or removed. Required.
	Owner string
	// StateDir holds the containers' logs, in StateDir/logs/<id>.log;
	// default /var/lib/berth/runtime.
	StateDir string
	// Network connects containers; nil runs them in the host's network
	// namespace.
	Network Network
	// Snapshotter unpacks images and makes container root filesystems;
	// default overlayfs.
	Snapshotter string
}

// The ContainerdConfig defaults.
const (
	DefaultContainerdAddress = "/run/containerd/containerd.sock"
	DefaultNamespace         = "berth"
	DefaultStateDir          = "/var/lib/berth/runtime"
	DefaultSnapshotter       = "overlayfs"
)

func (c *ContainerdConfig) setDefaults() error {
	if c.Owner == "" {
		return errors.New("runtime: ContainerdConfig.Owner is required: it keeps agents sharing one containerd apart")
	}
	if c.Address == "" {
		c.Address = DefaultContainerdAddress
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Snapshotter == "" {
		c.Snapshotter = DefaultSnapshotter
	}
	// The shim opens log files itself, from its own working directory.
	dir, err := filepath.Abs(c.StateDir)
	if err != nil {
		return fmt.Errorf("runtime: state dir %q: %w", c.StateDir, err)
	}
	c.StateDir = dir
	return nil
}

// Containerd runs containers with a containerd daemon. Containers keep
// running when the agent exits (the shim owns them and writes their logs),
// and a new Containerd with the same Owner adopts them.
type Containerd struct {
	cfg    ContainerdConfig
	client *containerd.Client
}

var _ Runtime = (*Containerd)(nil)

// NewContainerd connects to containerd and checks that it answers.
func NewContainerd(ctx context.Context, cfg ContainerdConfig) (*Containerd, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("runtime: create log dir: %w", err)
	}
	client, err := containerd.New(cfg.Address, containerd.WithDefaultNamespace(cfg.Namespace))
	if err != nil {
		return nil, fmt.Errorf("runtime: connect to containerd at %s: %w", cfg.Address, err)
	}
	if _, err := client.Version(namespaces.WithNamespace(ctx, cfg.Namespace)); err != nil {
		client.Close()
		return nil, fmt.Errorf("runtime: containerd at %s does not answer (is it running? `make setup` starts it): %w", cfg.Address, err)
	}
	return &Containerd{cfg: cfg, client: client}, nil
}

// Close closes the connection to containerd; containers keep running.
func (c *Containerd) Close() error {
	return c.client.Close()
}

// Client returns the containerd client, for callers that need more than
// Runtime (image distribution, tests).
func (c *Containerd) Client() *containerd.Client {
	return c.client
}

// ctx puts the runtime's namespace on ctx, which containerd's client reads
// locally too (for cgroup paths, leases), not only on the wire.
func (c *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.cfg.Namespace)
}

func (c *Containerd) logPath(id string) string {
	return filepath.Join(c.cfg.StateDir, "logs", id+".log")
}

// ImageExists reports whether the image named ref is in the store.
func (c *Containerd) ImageExists(ctx context.Context, ref string) (bool, error) {
	name, err := NormalizeImageRef(ref)
	if err != nil {
		return false, err
	}
	_, err = c.client.ImageService().Get(c.ctx(ctx), name)
	switch {
	case err == nil:
		return true, nil
	case errdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("runtime: look up image %s: %w", name, err)
	}
}

// ListImages returns every image in the namespace.
func (c *Containerd) ListImages(ctx context.Context) ([]Image, error) {
	ctx = c.ctx(ctx)
	imgs, err := c.client.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: list images: %w", err)
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		size, err := containerd.NewImage(c.client, img).Size(ctx)
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("runtime: size of image %s: %w", img.Name, err)
		}
		out = append(out, Image{Name: img.Name, Digest: img.Target.Digest.String(), Size: size, CreatedAt: img.CreatedAt})
	}
	return out, nil
}

// ImportImage loads an OCI image layout or docker-archive tar and unpacks
// its images for the snapshotter, so they can run without a registry.
func (c *Containerd) ImportImage(ctx context.Context, r io.Reader) ([]Image, error) {
	ctx = c.ctx(ctx)
	// One lease over import and unpack, so garbage collection cannot take
	// the content between the two.
	ctx, done, err := c.client.WithLease(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: import image: %w", err)
	}
	defer done(context.WithoutCancel(ctx))

	imgs, err := c.client.Import(ctx, r, containerd.WithImageRefTranslator(fullRefOnly))
	if err != nil {
		return nil, fmt.Errorf("runtime: import image archive (want an OCI layout or docker-archive tar): %w", err)
	}
	if len(imgs) == 0 {
		return nil, errors.New("runtime: import image archive: it names no image (OCI layouts need an io.containerd.image.name or org.opencontainers.image.ref.name annotation)")
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		image := containerd.NewImage(c.client, img)
		if err := image.Unpack(ctx, c.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("runtime: unpack image %s: %w", img.Name, err)
		}
		size, err := image.Size(ctx)
		if err != nil {
			return nil, fmt.Errorf("runtime: size of image %s: %w", img.Name, err)
		}
		out = append(out, Image{Name: img.Name, Digest: img.Target.Digest.String(), Size: size, CreatedAt: img.CreatedAt})
	}
	return out, nil
}

// fullRefOnly names an imported image after its ref.name annotation only
// when that is a reference with a repository; a bare tag like "latest"
// (what many OCI layouts hold there) names nothing.
func fullRefOnly(ref string) string {
	if !strings.ContainsAny(ref, ":/@") {
		return ""
	}
	name, err := NormalizeImageRef(ref)
	if err != nil {
		return ""
	}
	return name
}

// load returns the container id if this runtime owns it, else ErrNotFound.
func (c *Containerd) load(ctx context.Context, id string) (containers.Container, error) {
	info, err := c.client.ContainerService().Get(ctx, id)
	if errdefs.IsNotFound(err) {
		return containers.Container{}, fmt.Errorf("runtime: container %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return containers.Container{}, fmt.Errorf("runtime: load container %s: %w", id, err)
	}
	if info.Labels[LabelOwner] != c.cfg.Owner {
		// Another agent's container: as far as this one knows, not there.
		return containers.Container{}, fmt.Errorf("runtime: container %s: %w", id, ErrNotFound)
	}
	return info, nil
}

// Inspect returns the status of container id.
func (c *Containerd) Inspect(ctx context.Context, id string) (Status, error) {
	ctx = c.ctx(ctx)
	info, err := c.load(ctx, id)
	if err != nil {
		return Status{}, err
	}
	resp, err := c.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: id})
	if err != nil {
		if err = errgrpc.ToNative(err); !errdefs.IsNotFound(err) {
			return Status{}, fmt.Errorf("runtime: task of container %s: %w", id, err)
		}
		return statusOf(info, nil), nil
	}
	st := statusOf(info, resp.Process)
	if st.State == StateStopped && st.ExitCode != 0 {
		st.OOMKilled = c.oomKilled(ctx, id)[id]
	}
	return st, nil
}

// List returns the status of every container this runtime owns, with two
// calls to containerd however many there are, and a third when some have
// failed (to tell which were killed for memory).
func (c *Containerd) List(ctx context.Context) ([]Status, error) {
	ctx = c.ctx(ctx)
	infos, err := c.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q==%q", LabelOwner, c.cfg.Owner))
	if err != nil {
		return nil, fmt.Errorf("runtime: list containers: %w", err)
	}
	resp, err := c.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("runtime: list tasks: %w", errgrpc.ToNative(err))
	}
	procs := make(map[string]*tasktypes.Process, len(resp.Tasks))
	for _, p := range resp.Tasks {
		procs[p.ID] = p
	}
	out := make([]Status, 0, len(infos))
	var failed []string
	for _, info := range infos {
		if info.Labels[LabelOwner] != c.cfg.Owner {
			continue
		}
		st := statusOf(info, procs[info.ID])
		if st.State == StateStopped && st.ExitCode != 0 {
			failed = append(failed, st.ID)
		}
		out = append(out, st)
	}
	if oom := c.oomKilled(ctx, failed...); len(oom) > 0 {
		for i := range out {
			out[i].OOMKilled = oom[out[i].ID]
		}
	}
	return out, nil
}

// statusOf builds a Status from the container record and its task's
// process (nil when no task exists, so the container was never started).
func statusOf(info containers.Container, p *tasktypes.Process) Status {
	st := Status{ID: info.ID, State: StateCreated, Image: info.Image}
	statusFromLabels(&st, info.Labels)
	if p == nil {
		return st
	}
	st.Pid = p.Pid
	switch p.Status {
	case tasktypes.Status_CREATED:
		st.State = StateCreated
	case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		st.State = StateRunning
	case tasktypes.Status_STOPPED:
		st.State = StateStopped
		st.ExitCode = int32(p.ExitStatus)
		if p.ExitedAt != nil {
			st.ExitedAt = p.ExitedAt.AsTime()
		}
	default: // unknown: the shim is gone, and with it the exit status
		st.State = StateStopped
		st.ExitCode = containerd.UnknownExitStatus
	}
	return st
}
