package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/volume"
	"github.com/berthproject/berth/api/imageref"
)

// Create makes container spec.ID from its image, with a fresh snapshot and
// a network attachment, without starting it.
func (c *Runtime) Create(ctx context.Context, spec runtime.ContainerSpec) (retErr error) {
	if spec.ID == "" {
		return errors.New("runtime: create container: empty id")
	}
	ctx = c.ctx(ctx)
	name, err := imageref.Normalize(spec.Image)
	if err != nil {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, err)
	}
	if _, err := c.client.ContainerService().Get(ctx, spec.ID); err == nil {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, runtime.ErrExists)
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, err)
	}
	if spec.StopSignal != "" {
		if _, err := runtime.ParseSignal(spec.StopSignal); err != nil {
			return fmt.Errorf("runtime: create container %s: stop signal: %w", spec.ID, err)
		}
	}
	if err := c.checkStorage(spec); err != nil {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, err)
	}
	security, err := securityOpts(spec.Options)
	if err != nil {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, err)
	}
	hostNetwork, err := isHostNetwork(spec.Options.NetworkMode)
	if err != nil {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, err)
	}

	image, err := c.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: image %s is not on this node; load it with `berth image import`: %w", name, runtime.ErrImageNotFound)
	}
	if err != nil {
		return fmt.Errorf("runtime: create container %s: image %s: %w", spec.ID, name, err)
	}
	unpacked, err := image.IsUnpacked(ctx, c.cfg.Snapshotter)
	if err != nil {
		return fmt.Errorf("runtime: create container %s: image %s: %w", spec.ID, name, err)
	}
	if !unpacked {
		if err := image.Unpack(ctx, c.cfg.Snapshotter); err != nil {
			return fmt.Errorf("runtime: create container %s: unpack image %s: %w", spec.ID, name, err)
		}
	}
	imageSpec, err := image.Spec(ctx)
	if err != nil {
		return fmt.Errorf("runtime: create container %s: config of image %s: %w", spec.ID, name, err)
	}

	// Marked used before they are made, so that no Remove of the volume
	// can come in between.
	volumes := volumeRefs(spec)
	c.cfg.Volumes.Acquire(spec.ID, volumes...)
	defer func() {
		if retErr != nil {
			// The caller gets retErr; what is left here, a later Remove
			// or the next runtime's start removes.
			_ = c.releaseStorage(spec.ID)
		}
	}()

	var att runtime.Attachment
	if c.cfg.Network != nil && !hostNetwork {
		if att, err = c.cfg.Network.Attach(ctx, spec); err != nil {
			return fmt.Errorf("runtime: create container %s: attach network: %w", spec.ID, err)
		}
		defer func() {
			if retErr != nil {
				// The caller gets retErr; a failed detach only leaks what
				// Remove or the next attach of this id cleans up.
				_ = c.cfg.Network.Detach(context.WithoutCancel(ctx), spec.ID)
			}
		}()
	}
	labels, err := containerLabels(c.cfg.Owner, spec, att)
	if err != nil {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, err)
	}
	if len(volumes) > 0 {
		labels[volume.Label] = volume.FormatLabel(volumes)
	}
	opts := specOpts(image, imageSpec.Config.Entrypoint, imageSpec.Config.Cmd, spec, att)
	opts = append(opts, c.withStorage(spec))
	opts = append(opts, security...)

	_, err = c.client.NewContainer(ctx, spec.ID,
		ctd.WithImage(image),
		ctd.WithSnapshotter(c.cfg.Snapshotter),
		ctd.WithNewSnapshot(spec.ID, image),
		ctd.WithContainerLabels(labels),
		ctd.WithNewSpec(opts...),
	)
	if errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, runtime.ErrExists)
	}
	if err != nil {
		// The snapshot may have been made before the spec failed.
		_ = c.client.SnapshotService(c.cfg.Snapshotter).Remove(context.WithoutCancel(ctx), spec.ID)
		return fmt.Errorf("runtime: create container %s: %w", spec.ID, err)
	}
	return nil
}

// specOpts turns a ContainerSpec into OCI spec options over the image's
// configuration.
func specOpts(image ctd.Image, imageEntrypoint, imageCmd []string, spec runtime.ContainerSpec, att runtime.Attachment) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		oci.WithImageConfig(image),
		oci.WithProcessArgs(processArgs(imageEntrypoint, imageCmd, spec)...),
		oci.WithHostname(runtime.Hostname(spec)),
	}
	if len(spec.Env) > 0 {
		opts = append(opts, oci.WithEnv(spec.Env))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.User != "" {
		opts = append(opts, oci.WithUser(spec.User))
	}
	if spec.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(spec.MemoryBytes)))
	}
	if spec.MilliCPUs > 0 {
		quota, period, shares := cpuLimits(spec.MilliCPUs)
		opts = append(opts, oci.WithCPUCFS(quota, period), oci.WithCPUShares(shares))
	}
	if att.NetNSPath != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: att.NetNSPath}))
	} else {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	}
	if len(att.Files) > 0 {
		opts = append(opts, withFiles(att.Files))
	}
	return opts
}

// withFiles bind-mounts the generated files (by their path in the
// container) over the image's.
func withFiles(files map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, dst := range slices.Sorted(maps.Keys(files)) {
			s.Mounts = append(s.Mounts, specs.Mount{
				Destination: dst,
				Type:        "bind",
				Source:      files[dst],
				Options:     []string{"rbind", "rprivate"},
			})
		}
		return nil
	}
}

// Start starts container id's process, writing its output to the log
// file. Starting a running container returns its status; starting a
// stopped one runs its process again.
func (c *Runtime) Start(ctx context.Context, id string) (runtime.Status, error) {
	ctx = c.ctx(ctx)
	info, err := c.load(ctx, id)
	if err != nil {
		return runtime.Status{}, err
	}
	cont, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return runtime.Status{}, fmt.Errorf("runtime: start container %s: %w", id, err)
	}
	logIO := c.logIO(id, info.Labels)
	task, err := cont.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
		// The shim runs the log driver itself, so logs keep flowing
		// when the agent exits or restarts.
		task, err = cont.NewTask(ctx, logIO)
		if err != nil {
			return runtime.Status{}, fmt.Errorf("runtime: start container %s: create task: %w", id, err)
		}
	case err != nil:
		return runtime.Status{}, fmt.Errorf("runtime: start container %s: %w", id, err)
	default:
		st, err := task.Status(ctx)
		if err != nil {
			return runtime.Status{}, fmt.Errorf("runtime: start container %s: %w", id, err)
		}
		switch st.Status {
		case ctd.Created:
		case ctd.Stopped, ctd.Unknown:
			if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
				return runtime.Status{}, fmt.Errorf("runtime: restart container %s: delete old task: %w", id, err)
			}
			if task, err = cont.NewTask(ctx, logIO); err != nil {
				return runtime.Status{}, fmt.Errorf("runtime: restart container %s: create task: %w", id, err)
			}
		default:
			return c.Inspect(ctx, id)
		}
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(context.WithoutCancel(ctx), ctd.WithProcessKill)
		return runtime.Status{}, fmt.Errorf("runtime: start container %s: %w", id, err)
	}
	return c.Inspect(ctx, id)
}

// task returns container id's task, or ErrNotFound wrapped when the
// container does not exist, is not ours, or was never started.
func (c *Runtime) task(ctx context.Context, id string) (ctd.Task, error) {
	if _, err := c.load(ctx, id); err != nil {
		return nil, err
	}
	cont, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("runtime: container %s: %w", id, err)
	}
	task, err := cont.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("runtime: container %s has not been started: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: task of container %s: %w", id, err)
	}
	return task, nil
}

// Wait returns a channel that receives the exit of container id's process
// (at once if it has exited already), or the reason waiting failed. The
// channel is buffered, so nobody has to read it.
func (c *Runtime) Wait(ctx context.Context, id string) (<-chan runtime.Exit, error) {
	ctx = c.ctx(ctx)
	task, err := c.task(ctx, id)
	if err != nil {
		return nil, err
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: wait for container %s: %w", id, err)
	}
	out := make(chan runtime.Exit, 1)
	go func() {
		// task.Wait's goroutine ends when ctx does, and always sends once.
		st := <-statusC
		code, at, err := st.Result()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			out <- runtime.Exit{Code: -1, Err: fmt.Errorf("runtime: wait for container %s: %w", id, err)}
			return
		}
		ex := runtime.Exit{Code: int32(code), At: at}
		if code != 0 {
			// Read now, while the task and its cgroup still exist: the
			// caller deletes them once it has this exit.
			ex.OOMKilled = c.oomKilled(ctx, id)[id]
		}
		out <- ex
	}()
	return out, nil
}

// Stop sends signal (or the container's stop signal, or SIGTERM) to
// container id's process and SIGKILL if it has not exited after grace.
func (c *Runtime) Stop(ctx context.Context, id string, signal string, grace time.Duration) error {
	ctx = c.ctx(ctx)
	info, err := c.load(ctx, id)
	if err != nil {
		return err
	}
	if signal == "" {
		signal = info.Labels[labelStopSignal]
	}
	sig := syscall.SIGTERM
	if signal != "" {
		if sig, err = runtime.ParseSignal(signal); err != nil {
			return fmt.Errorf("runtime: stop container %s: %w", id, err)
		}
	}
	task, err := c.task(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil // never started
	}
	if err != nil {
		return err
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: stop container %s: %w", id, err)
	}
	if st.Status == ctd.Stopped || st.Status == ctd.Unknown {
		return nil
	}

	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Wait before killing, so the exit cannot slip between the two.
	exited, err := task.Wait(waitCtx)
	if err != nil {
		return fmt.Errorf("runtime: stop container %s: %w", id, err)
	}
	if err := task.Kill(ctx, sig); err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("runtime: stop container %s: send %s: %w", id, signal, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("runtime: stop container %s: %w", id, ctx.Err())
	case <-timer.C:
	}
	if err := task.Kill(ctx, syscall.SIGKILL, ctd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: stop container %s: kill: %w", id, err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("runtime: stop container %s after SIGKILL: %w", id, ctx.Err())
	}
}

// Remove kills container id's process if it runs and deletes the task, the
// container, its snapshot, its network attachment and its log file.
// Removing a container that does not exist is not an error.
func (c *Runtime) Remove(ctx context.Context, id string) error {
	ctx = c.ctx(ctx)
	info, err := c.client.ContainerService().Get(ctx, id)
	switch {
	case errdefs.IsNotFound(err):
		// A remove cut short after deleting the container may have left
		// the attachment and the log behind.
		return c.removeLeftovers(ctx, id)
	case err != nil:
		return fmt.Errorf("runtime: remove container %s: %w", id, err)
	case info.Labels[LabelOwner] != c.cfg.Owner:
		return nil // another agent's: left alone
	}
	cont, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return c.removeLeftovers(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("runtime: remove container %s: %w", id, err)
	}
	if task, err := cont.Task(ctx, nil); err == nil {
		if err := deleteTask(ctx, task); err != nil {
			return fmt.Errorf("runtime: remove container %s: delete task: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: remove container %s: %w", id, err)
	}
	if err := cont.Delete(ctx, ctd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("runtime: remove container %s: %w", id, err)
	}
	return c.removeLeftovers(ctx, id)
}

// deleteTask kills task's processes and deletes it. The shim can still
// count a process as running just after the kill (one of the container's
// exec'd processes, say, not yet reaped): then every process is killed
// again and the delete tried once more, after the task's exit.
func deleteTask(ctx context.Context, task ctd.Task) error {
	_, err := task.Delete(ctx, ctd.WithProcessKill)
	if err == nil || errdefs.IsNotFound(err) {
		return nil
	}
	// The shim says so in words only (code unknown).
	if !strings.Contains(err.Error(), "cannot delete a running process") {
		return err
	}
	exited, werr := task.Wait(ctx)
	if werr != nil {
		return errors.Join(err, werr)
	}
	if kerr := task.Kill(ctx, syscall.SIGKILL, ctd.WithKillAll); kerr != nil && !errdefs.IsNotFound(kerr) {
		return errors.Join(err, kerr)
	}
	select {
	case <-exited:
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
	if _, err := task.Delete(ctx, ctd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// removeLeftovers detaches container id from the network, deletes its
// log file, its files' tmpfs and its scratch volumes, and drops its marks
// on named volumes, all idempotent.
func (c *Runtime) removeLeftovers(ctx context.Context, id string) error {
	if c.cfg.Network != nil {
		if err := c.cfg.Network.Detach(ctx, id); err != nil {
			return fmt.Errorf("runtime: remove container %s: detach network: %w", id, err)
		}
	}
	if err := c.removeLogs(id); err != nil {
		return fmt.Errorf("runtime: remove container %s: %w", id, err)
	}
	if err := c.releaseStorage(id); err != nil {
		return fmt.Errorf("runtime: remove container %s: %w", id, err)
	}
	return nil
}
