package containerd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/berthproject/berth/agent/runtime"
)

// How an ended container's process exited, kept in its labels once its
// task is deleted (see Release).
const (
	labelExitCode  = "berth.runtime.exit-code"
	labelExitedAt  = "berth.runtime.exited-at"
	labelOOMKilled = "berth.runtime.oom-killed"
)

// Release frees what container id holds only while its process runs,
// once that process has ended: its network attachment (namespace, links,
// port rules, DNS server) and its containerd task, whose shim process
// would otherwise stay for as long as the container is kept. How the
// process exited moves to the container's labels first, so Inspect and
// List still report it, also to a restarted agent. The container, its
// snapshot and its log stay until Remove. A container whose process still
// runs keeps its task. Idempotent; nil if the container is not there.
func (c *Runtime) Release(ctx context.Context, id string) error {
	ctx = c.ctx(ctx)
	if _, err := c.load(ctx, id); errors.Is(err, runtime.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	if err := c.endTask(ctx, id); err != nil {
		errs = append(errs, fmt.Errorf("runtime: release container %s: %w", id, err))
	}
	if c.cfg.Network != nil {
		if err := c.cfg.Network.Detach(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("runtime: release container %s: detach network: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// endTask records how the ended process of container id exited in the
// container's labels and deletes its task; nothing when the process still
// runs, never ran, or its task is gone already.
func (c *Runtime) endTask(ctx context.Context, id string) error {
	st, err := c.Inspect(ctx, id)
	if err != nil {
		return err
	}
	if st.State != runtime.StateStopped {
		return nil
	}
	cont, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	task, err := cont.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	labels := map[string]string{
		labelExitCode:  strconv.FormatInt(int64(st.ExitCode), 10),
		labelOOMKilled: strconv.FormatBool(st.OOMKilled),
	}
	if !st.ExitedAt.IsZero() {
		labels[labelExitedAt] = st.ExitedAt.UTC().Format(time.RFC3339Nano)
	}
	if _, err := cont.SetLabels(ctx, labels); err != nil {
		return fmt.Errorf("record the exit: %w", err)
	}
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete the ended task: %w", err)
	}
	return nil
}

// endedStatus fills st from the exit labels of a container whose task
// Release deleted; ok is false when it has none.
func endedStatus(st *runtime.Status, labels map[string]string) (ok bool) {
	code, has := labels[labelExitCode]
	if !has {
		return false
	}
	n, err := strconv.ParseInt(code, 10, 32)
	if err != nil {
		n = int64(ctd.UnknownExitStatus)
	}
	st.State, st.ExitCode = runtime.StateStopped, int32(n)
	if at, err := time.Parse(time.RFC3339Nano, labels[labelExitedAt]); err == nil {
		st.ExitedAt = at
	}
	st.OOMKilled = labels[labelOOMKilled] == "true"
	return true
}
