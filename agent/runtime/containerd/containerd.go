// Package containerd implements runtime.Runtime on a containerd daemon:
// containers, their logs, exec sessions, stats and the node's images.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/jsonlog"
	"github.com/berthproject/berth/agent/volume"
	"github.com/berthproject/berth/api/imageref"
)

// Config configures a containerd Runtime.
type Config struct {
	// Address of containerd's socket; default /run/containerd/containerd.sock.
	Address string
	// Namespace in containerd for Berth's containers and images; default "berth".
	Namespace string
	// Owner names this runtime instance, usually the node id. It is set as
	// label berth.owner on every container, and only containers with this
	// owner are listed, inspected, stopped or removed. Required.
	Owner string
	// StateDir holds the containers' logs, in StateDir/logs/<id>.log
	// (and <id>.log.1 ... once rotated); default /var/lib/berth/runtime.
	StateDir string
	// Network connects containers; nil runs them in the host's network
	// namespace.
	Network runtime.Network
	// Snapshotter unpacks images and makes container root filesystems;
	// default overlayfs.
	Snapshotter string
	// Volumes holds the node's named and scratch volumes; default a
	// store in StateDir.
	Volumes *volume.Store
	// Files holds the containers' secret and config files, in memory;
	// default a tmpfs per container under files.DefaultRoot.
	Files *files.Dirs
	// InitPath is the init of containers with Options.Init, a static
	// binary mounted into them; default DefaultInitPath.
	InitPath string
	// LogDriver is the berth binary the shims run to write containers'
	// output as json-file logs (`berth log-driver`, see package jsonlog);
	// default this process's own executable. It must run on its own: a
	// running driver keeps the file it was started from open, so an
	// upgrade may replace the binary on disk.
	LogDriver string
	// LogLimits bound the log files of containers whose spec sets none;
	// zero fields default to jsonlog's 10 MB × 3.
	LogLimits runtime.LogLimits
}

// The Config defaults.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultNamespace   = "berth"
	DefaultStateDir    = "/var/lib/berth/runtime"
	DefaultSnapshotter = "overlayfs"
	// DefaultInitPath is tini's static build, from Debian's tini package.
	DefaultInitPath = "/usr/bin/tini-static"
)

func (c *Config) setDefaults() error {
	if c.Owner == "" {
		return errors.New("runtime: containerd.Config.Owner is required: it keeps agents sharing one containerd apart")
	}
	if c.Address == "" {
		c.Address = DefaultAddress
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
	if c.InitPath == "" {
		c.InitPath = DefaultInitPath
	}
	if c.LogDriver == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("runtime: find the berth binary to run as log driver: %w", err)
		}
		c.LogDriver = exe
	}
	if c.LogLimits.MaxSize <= 0 {
		c.LogLimits.MaxSize = jsonlog.DefaultMaxSize
	}
	if c.LogLimits.MaxFiles <= 0 {
		c.LogLimits.MaxFiles = jsonlog.DefaultMaxFiles
	}
	// The shim opens log files itself, from its own working directory.
	dir, err := filepath.Abs(c.StateDir)
	if err != nil {
		return fmt.Errorf("runtime: state dir %q: %w", c.StateDir, err)
	}
	c.StateDir = dir
	return nil
}

// Runtime runs containers with a containerd daemon. Containers keep
// running when the agent exits (the shim owns them and writes their logs),
// and a new Runtime with the same Owner adopts them.
type Runtime struct {
	cfg    Config
	client *ctd.Client
}

var _ runtime.Runtime = (*Runtime)(nil)

// New connects to containerd and checks that it answers.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("runtime: create log dir: %w", err)
	}
	client, err := ctd.New(cfg.Address, ctd.WithDefaultNamespace(cfg.Namespace))
	if err != nil {
		return nil, fmt.Errorf("runtime: connect to containerd at %s: %w", cfg.Address, err)
	}
	if _, err := client.Version(namespaces.WithNamespace(ctx, cfg.Namespace)); err != nil {
		client.Close()
		return nil, fmt.Errorf("runtime: containerd at %s does not answer (is it running? `make setup` starts it): %w", cfg.Address, err)
	}
	c := &Runtime{cfg: cfg, client: client}
	if err := c.openStorage(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the connection to containerd; containers keep running.
func (c *Runtime) Close() error {
	return c.client.Close()
}

// Client returns the containerd client, for callers that need more than
// runtime.Runtime (image distribution, tests).
func (c *Runtime) Client() *ctd.Client {
	return c.client
}

// ctx puts the runtime's namespace on ctx, which containerd's client reads
// locally too (for cgroup paths, leases), not only on the wire.
func (c *Runtime) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.cfg.Namespace)
}

func (c *Runtime) logPath(id string) string {
	return filepath.Join(c.cfg.StateDir, "logs", id+".log")
}

// ImageExists reports whether the image named ref is in the store.
func (c *Runtime) ImageExists(ctx context.Context, ref string) (bool, error) {
	name, err := imageref.Normalize(ref)
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
func (c *Runtime) ListImages(ctx context.Context) ([]runtime.Image, error) {
	ctx = c.ctx(ctx)
	imgs, err := c.client.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: list images: %w", err)
	}
	out := make([]runtime.Image, 0, len(imgs))
	for _, img := range imgs {
		size, err := ctd.NewImage(c.client, img).Size(ctx)
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("runtime: size of image %s: %w", img.Name, err)
		}
		out = append(out, runtime.Image{Name: img.Name, Digest: img.Target.Digest.String(), Size: size, CreatedAt: img.CreatedAt})
	}
	return out, nil
}

// ImportImage loads an OCI image layout or docker-archive tar and unpacks
// its images for the snapshotter, so they can run without a registry.
func (c *Runtime) ImportImage(ctx context.Context, r io.Reader) ([]runtime.Image, error) {
	ctx = c.ctx(ctx)
	// One lease over import and unpack, so garbage collection cannot take
	// the content between the two.
	ctx, done, err := c.client.WithLease(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: import image: %w", err)
	}
	defer done(context.WithoutCancel(ctx))

	imgs, err := c.importRetrying(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("runtime: import image archive (want an OCI layout or docker-archive tar): %w", err)
	}
	if len(imgs) == 0 {
		return nil, errors.New("runtime: import image archive: it names no image (OCI layouts need an io.containerd.image.name or org.opencontainers.image.ref.name annotation)")
	}
	out := make([]runtime.Image, 0, len(imgs))
	for _, img := range imgs {
		image := ctd.NewImage(c.client, img)
		if err := image.Unpack(ctx, c.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("runtime: unpack image %s: %w", img.Name, err)
		}
		size, err := image.Size(ctx)
		if err != nil {
			return nil, fmt.Errorf("runtime: size of image %s: %w", img.Name, err)
		}
		out = append(out, runtime.Image{Name: img.Name, Digest: img.Target.Digest.String(), Size: size, CreatedAt: img.CreatedAt})
	}
	return out, nil
}

// importRetrying imports the archive r, spooled to a temporary file so
// that it can be read twice: two agents sharing a containerd namespace
// (several nodes on one machine) that import the same image at once race
// to create its record, and the loser's second try updates it.
func (c *Runtime) importRetrying(ctx context.Context, r io.Reader) ([]images.Image, error) {
	f, err := os.CreateTemp("", "berth-import-*.tar")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return nil, fmt.Errorf("reading the archive: %w", err)
	}
	for attempt := 0; ; attempt++ {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		imgs, err := c.client.Import(ctx, f, ctd.WithImageRefTranslator(runtime.ImportedImageName))
		if errdefs.IsAlreadyExists(err) && attempt == 0 {
			continue
		}
		return imgs, err
	}
}

// load returns the container id if this runtime owns it, else ErrNotFound.
func (c *Runtime) load(ctx context.Context, id string) (containers.Container, error) {
	info, err := c.client.ContainerService().Get(ctx, id)
	if errdefs.IsNotFound(err) {
		return containers.Container{}, fmt.Errorf("runtime: container %s: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return containers.Container{}, fmt.Errorf("runtime: load container %s: %w", id, err)
	}
	if info.Labels[LabelOwner] != c.cfg.Owner {
		// Another agent's container: as far as this one knows, not there.
		return containers.Container{}, fmt.Errorf("runtime: container %s: %w", id, runtime.ErrNotFound)
	}
	return info, nil
}

// Inspect returns the status of container id.
func (c *Runtime) Inspect(ctx context.Context, id string) (runtime.Status, error) {
	ctx = c.ctx(ctx)
	info, err := c.load(ctx, id)
	if err != nil {
		return runtime.Status{}, err
	}
	resp, err := c.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: id})
	if err != nil {
		if err = errgrpc.ToNative(err); !errdefs.IsNotFound(err) {
			return runtime.Status{}, fmt.Errorf("runtime: task of container %s: %w", id, err)
		}
		return statusOf(info, nil), nil
	}
	st := statusOf(info, resp.Process)
	if st.State == runtime.StateStopped && st.ExitCode != 0 {
		st.OOMKilled = st.OOMKilled || c.oomKilled(ctx, id)[id]
	}
	return st, nil
}

// List returns the status of every container this runtime owns, with two
// calls to containerd however many there are, and a third when some have
// failed (to tell which were killed for memory).
func (c *Runtime) List(ctx context.Context) ([]runtime.Status, error) {
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
	out := make([]runtime.Status, 0, len(infos))
	var failed []string
	for _, info := range infos {
		if info.Labels[LabelOwner] != c.cfg.Owner {
			continue
		}
		st := statusOf(info, procs[info.ID])
		if st.State == runtime.StateStopped && st.ExitCode != 0 && !st.OOMKilled {
			failed = append(failed, st.ID)
		}
		out = append(out, st)
	}
	if oom := c.oomKilled(ctx, failed...); len(oom) > 0 {
		for i := range out {
			out[i].OOMKilled = out[i].OOMKilled || oom[out[i].ID]
		}
	}
	return out, nil
}

// statusOf builds a Status from the container record and its task's
// process (nil when no task exists, so the container was never started).
func statusOf(info containers.Container, p *tasktypes.Process) runtime.Status {
	st := runtime.Status{ID: info.ID, State: runtime.StateCreated, Image: info.Image}
	statusFromLabels(&st, info.Labels)
	if p == nil {
		// No task: never started, or ended and released.
		endedStatus(&st, info.Labels)
		return st
	}
	st.Pid = p.Pid
	switch p.Status {
	case tasktypes.Status_CREATED:
		st.State = runtime.StateCreated
	case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		st.State = runtime.StateRunning
	case tasktypes.Status_STOPPED:
		st.State = runtime.StateStopped
		st.ExitCode = int32(p.ExitStatus)
		if p.ExitedAt != nil {
			st.ExitedAt = p.ExitedAt.AsTime()
		}
	default: // unknown: the shim is gone, and with it the exit status
		st.State = runtime.StateStopped
		st.ExitCode = ctd.UnknownExitStatus
	}
	return st
}

// Ping reports whether containerd answers: the node's runtime condition.
func (c *Runtime) Ping(ctx context.Context) error {
	_, err := c.client.Version(c.ctx(ctx))
	return err
}
