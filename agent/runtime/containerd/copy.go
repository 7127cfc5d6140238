package containerd

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	ctd "github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/containerfs"
)

var _ runtime.Files = (*Runtime)(nil)

// CopyFrom writes path in running container id as a tar archive, read
// through its init process's root, so the container's volumes and tmpfs
// are seen as it sees them.
func (c *Runtime) CopyFrom(ctx context.Context, id, p string, w io.Writer) error {
	root, _, err := c.runningRoot(ctx, id)
	if err != nil {
		return err
	}
	if err := containerfs.Tar(root, p, w, containerfs.MaxCopy); err != nil {
		return fmt.Errorf("runtime: copy from container %s: %w", id, err)
	}
	return nil
}

// CopyTo unpacks the tar archive r at path in running container id. A
// container with a read-only root file system takes files only in its
// writable mounts.
func (c *Runtime) CopyTo(ctx context.Context, id, p string, r io.Reader) (int, error) {
	root, cont, err := c.runningRoot(ctx, id)
	if err != nil {
		return 0, err
	}
	spec, err := cont.Spec(ctx)
	if err != nil {
		return 0, fmt.Errorf("runtime: copy to container %s: %w", id, err)
	}
	if spec.Root != nil && spec.Root.Readonly && !inWritableMount(spec.Mounts, p) {
		return 0, fmt.Errorf("runtime: copy to container %s: %s: the container's root file system is read-only (read_only: true) and the path is in no writable volume: %w", id, p, runtime.ErrReadOnly)
	}
	n, err := containerfs.Untar(root, p, r, containerfs.MaxCopy)
	if err != nil {
		return n, fmt.Errorf("runtime: copy to container %s: %w", id, err)
	}
	return n, nil
}

// runningRoot is the root of running container id's init process,
// /proc/<pid>/root, and the container.
func (c *Runtime) runningRoot(ctx context.Context, id string) (string, ctd.Container, error) {
	ctx = c.ctx(ctx)
	task, err := c.task(ctx, id)
	if err != nil {
		return "", nil, err
	}
	st, err := task.Status(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("runtime: container %s: %w", id, err)
	}
	if st.Status != ctd.Running && st.Status != ctd.Paused {
		return "", nil, fmt.Errorf("runtime: container %s is %s, not running: %w", id, st.Status, runtime.ErrNotFound)
	}
	cont, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return "", nil, fmt.Errorf("runtime: container %s: %w", id, err)
	}
	return fmt.Sprintf("/proc/%d/root", task.Pid()), cont, nil
}

// inWritableMount reports whether p (absolute in the container) is under
// a mount that is not read-only and holds data (a volume, a bind mount or
// a tmpfs; not /proc, /sys or /dev).
func inWritableMount(mounts []specs.Mount, p string) bool {
	p = path.Clean("/" + p)
	for _, m := range mounts {
		dst := path.Clean(m.Destination)
		if dst == "/" || slices.Contains(m.Options, "ro") {
			continue
		}
		if dst == "/proc" || dst == "/sys" || dst == "/dev" || strings.HasPrefix(dst, "/proc/") || strings.HasPrefix(dst, "/sys/") || strings.HasPrefix(dst, "/dev/") {
			continue
		}
		if p == dst || strings.HasPrefix(p, dst+"/") {
			return true
		}
	}
	return false
}
