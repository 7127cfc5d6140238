package containerd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/agent/runtime"
)

// ExecSession runs opts.Cmd in running container id with the container's
// process settings, changed by opts, and its streams connected to opts'.
// It returns the exit code once the command exited and its output was
// copied (for at most sessionOutputDrain after the exit).
func (c *Runtime) ExecSession(ctx context.Context, id string, opts runtime.SessionOptions) (int, error) {
	if len(opts.Cmd) == 0 {
		return -1, fmt.Errorf("runtime: exec in container %s: empty command", id)
	}
	ctx = c.ctx(ctx)
	task, pspec, err := c.processSpec(ctx, id)
	if err != nil {
		return -1, err
	}
	pspec.Args = opts.Cmd
	pspec.Env = mergeEnv(pspec.Env, opts.Env)
	if opts.WorkingDir != "" {
		pspec.Cwd = opts.WorkingDir
	}
	if opts.User != "" {
		u, err := resolveUser(filepath.Join("/proc", strconv.Itoa(int(task.Pid())), "root"), opts.User)
		if err != nil {
			return -1, fmt.Errorf("runtime: exec in container %s: %w", id, err)
		}
		pspec.User = u
	}
	pspec.Terminal = opts.TTY
	if opts.TTY && opts.Size.Width > 0 && opts.Size.Height > 0 {
		pspec.ConsoleSize = &specs.Box{Width: uint(opts.Size.Width), Height: uint(opts.Size.Height)}
	}

	stdout, stderr := orDiscard(opts.Stdout), orDiscard(opts.Stderr)
	var stdin io.Reader
	var input *sessionInput
	if opts.Stdin != nil {
		input = &sessionInput{ctx: context.WithoutCancel(ctx), r: opts.Stdin, ready: make(chan struct{})}
		defer input.release(nil)
		stdin = input
	}
	streams := []cio.Opt{cio.WithStreams(stdin, stdout, stderr)}
	if opts.TTY {
		streams = append(streams, cio.WithTerminal)
	}
	execID, err := newExecID()
	if err != nil {
		return -1, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(streams...))
	if err != nil {
		return -1, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	// Cleanup runs even when ctx has ended: it makes sure no process is
	// left behind in the container, and closes the streams' copies.
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execCleanupTimeout)
	defer cancel()
	defer func() { _, _ = proc.Delete(cleanupCtx, ctd.WithProcessKill) }()

	exited, err := proc.Wait(cleanupCtx) // before Start: a quick exit is not missed
	if err != nil {
		return -1, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return -1, fmt.Errorf("runtime: exec %q in container %s: %w", opts.Cmd[0], id, err)
	}
	if input != nil {
		input.release(proc)
	}
	if opts.TTY && opts.Size.Width > 0 && opts.Size.Height > 0 {
		// Not every runc applies the spec's console size to an exec.
		_ = proc.Resize(ctx, opts.Size.Width, opts.Size.Height)
	}
	resizeCtx, stopResizing := context.WithCancel(ctx)
	resized := make(chan struct{})
	go func() {
		defer close(resized)
		forEachResize(resizeCtx, opts.Resize, func(sz runtime.TerminalSize) {
			_ = proc.Resize(resizeCtx, sz.Width, sz.Height) // best effort: the process may be exiting
		})
	}()
	defer func() {
		stopResizing()
		<-resized
	}()

	var st ctd.ExitStatus
	select {
	case st = <-exited:
	case <-ctx.Done():
		if err := proc.Kill(cleanupCtx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return -1, fmt.Errorf("runtime: exec in container %s: kill after %w: %w", id, ctx.Err(), err)
		}
		select {
		case <-exited:
		case <-cleanupCtx.Done():
		}
		return -1, fmt.Errorf("runtime: exec %q in container %s: %w", opts.Cmd[0], id, ctx.Err())
	}
	code, _, err := st.Result()
	if err != nil {
		return -1, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	drained := make(chan struct{})
	go func() {
		proc.IO().Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(sessionOutputDrain):
		proc.IO().Cancel() // ends the copies; the goroutine above then ends
	}
	return int(code), nil
}

// sessionInput is a session's stdin. At the end of input it closes the
// process's stdin in the shim too: the shim holds the stdin fifo open
// itself, so closing our end alone never reaches the process as EOF. That
// can only happen once the process has started.
type sessionInput struct {
	ctx   context.Context // the runtime's namespace, without the call's end
	r     io.Reader
	once  sync.Once
	ready chan struct{} // closed by release
	proc  ctd.Process
}

// release lets the end of input reach proc (nil: the process did not
// start, and there is nothing to close).
func (in *sessionInput) release(proc ctd.Process) {
	in.once.Do(func() {
		in.proc = proc
		close(in.ready)
	})
}

func (in *sessionInput) Read(p []byte) (int, error) {
	n, err := in.r.Read(p)
	if err == io.EOF {
		<-in.ready
		if in.proc != nil {
			ctx, cancel := context.WithTimeout(in.ctx, execCleanupTimeout)
			defer cancel()
			_ = in.proc.CloseIO(ctx, ctd.WithStdinCloser) // gone already when the process exited
		}
	}
	return n, err
}

// processSpec returns container id's task and a copy of its process spec,
// the base of a process exec'd in it.
func (c *Runtime) processSpec(ctx context.Context, id string) (ctd.Task, specs.Process, error) {
	task, err := c.task(ctx, id)
	if err != nil {
		return nil, specs.Process{}, err
	}
	cont, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, specs.Process{}, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	spec, err := cont.Spec(ctx)
	if err != nil {
		return nil, specs.Process{}, fmt.Errorf("runtime: exec in container %s: read spec: %w", id, err)
	}
	if spec.Process == nil {
		return nil, specs.Process{}, fmt.Errorf("runtime: exec in container %s: its spec has no process", id)
	}
	p := *spec.Process
	p.Env = append([]string(nil), p.Env...)
	return task, p, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// mergeEnv returns base with the KEY=VALUE entries of over set, replacing
// the entries of base with the same keys.
func mergeEnv(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	key := func(kv string) string { k, _, _ := strings.Cut(kv, "="); return k }
	replaced := map[string]bool{}
	for _, kv := range over {
		replaced[key(kv)] = true
	}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		if !replaced[key(kv)] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}

// resolveUser turns "user[:group]" (names or numeric ids) into ids, looking
// names up in the /etc/passwd and /etc/group under root (the container's
// root filesystem). A user without a group runs with its primary group (0
// for a numeric user the passwd file does not list).
func resolveUser(root, spec string) (specs.User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var u specs.User
	passwd, perr := readIDFile(filepath.Join(root, "etc", "passwd"))
	if uid, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u.UID = uint32(uid)
		for _, f := range passwd {
			if len(f) > 3 && f[2] == userPart {
				if gid, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					u.GID = uint32(gid)
				}
				break
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) > 3 && f[0] == userPart {
				uid, err1 := strconv.ParseUint(f[2], 10, 32)
				gid, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return u, fmt.Errorf("user %q has a malformed /etc/passwd entry", userPart)
				}
				u.UID, u.GID, found = uint32(uid), uint32(gid), true
				break
			}
		}
		if !found {
			if perr != nil {
				return u, fmt.Errorf("user %q: cannot read the container's /etc/passwd (%w); give a numeric uid", userPart, perr)
			}
			return u, fmt.Errorf("user %q is not in the container's /etc/passwd; give a numeric uid or a user the image has", userPart)
		}
	}
	if !hasGroup {
		return u, nil
	}
	if gid, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
		u.GID = uint32(gid)
		return u, nil
	}
	groups, gerr := readIDFile(filepath.Join(root, "etc", "group"))
	for _, f := range groups {
		if len(f) > 2 && f[0] == groupPart {
			gid, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				return u, fmt.Errorf("group %q has a malformed /etc/group entry", groupPart)
			}
			u.GID = uint32(gid)
			return u, nil
		}
	}
	if gerr != nil {
		return u, fmt.Errorf("group %q: cannot read the container's /etc/group (%w); give a numeric gid", groupPart, gerr)
	}
	return u, fmt.Errorf("group %q is not in the container's /etc/group; give a numeric gid or a group the image has", groupPart)
}

// readIDFile reads a colon-separated file such as /etc/passwd into fields.
func readIDFile(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}

// sessionOutputDrain bounds how long output is still copied after the
// command exited: a background process it left behind may keep the output
// open forever.
const sessionOutputDrain = 2 * time.Second

// forEachResize calls fn with each size from sizes until sizes is closed
// or ctx ends.
func forEachResize(ctx context.Context, sizes <-chan runtime.TerminalSize, fn func(runtime.TerminalSize)) {
	if sizes == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-sizes:
			if !ok {
				return
			}
			fn(sz)
		}
	}
}
