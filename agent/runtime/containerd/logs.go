package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/jsonlog"
)

// logIO is how a new task of container id writes its output: the shim
// runs the berth binary as the container's logging binary, which keeps
// stdout and stderr apart in a json-file log bounded by the container's
// log limits (its labels) or the runtime's.
func (c *Runtime) logIO(id string, labels map[string]string) cio.Creator {
	limits := c.cfg.LogLimits
	if n, err := strconv.ParseInt(labels[labelLogMaxSize], 10, 64); err == nil && n > 0 {
		limits.MaxSize = n
	}
	if n, err := strconv.Atoi(labels[labelLogMaxFile]); err == nil && n > 0 {
		limits.MaxFiles = n
	}
	opts := jsonlog.Options{MaxSize: limits.MaxSize, MaxFiles: limits.MaxFiles}
	return cio.BinaryIO(c.cfg.LogDriver, jsonlog.DriverArgs(c.logPath(id), opts))
}

// Logs calls fn with the lines container id has written, each with its
// stream and the time the log driver read it. Containers started before
// Berth wrote json-file logs have a plain file, which the shim wrote
// without streams or times: its lines come as Stdout without a time, and
// count as written when the file was last written for opts.Since and
// opts.Until. With opts.Follow it returns when the container's process
// has exited and its output is read, when a line past opts.Until comes,
// or when ctx ends.
func (c *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions, fn func(runtime.LogLine) error) error {
	ctx = c.ctx(ctx)
	if _, err := c.load(ctx, id); err != nil {
		return err
	}
	var exited <-chan runtime.Exit
	if opts.Follow {
		waitCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := c.Wait(waitCtx, id)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			// Never started: there is nothing to follow.
		case err != nil:
			return err
		default:
			exited = ch
		}
	}
	if err := jsonlog.Read(ctx, c.logPath(id), opts, exited, fn); err != nil {
		return fmt.Errorf("runtime: logs of container %s: %w", id, err)
	}
	return nil
}

// removeLogs deletes container id's log file and its rotated files.
func (c *Runtime) removeLogs(id string) error {
	path := c.logPath(id)
	rotated, err := filepath.Glob(path + ".*")
	if err != nil {
		return err
	}
	for _, p := range append(rotated, path) {
		if p != path && strings.ContainsFunc(strings.TrimPrefix(p, path+"."), func(r rune) bool { return r < '0' || r > '9' }) {
			continue // not one of ours
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("log file: %w", err)
		}
	}
	return nil
}
