package fake

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

// SessionFunc answers a Runtime's ExecSession.
type SessionFunc func(ctx context.Context, opts runtime.SessionOptions) (int, error)

// SetExecSession makes ExecSession in container id call fn; nil restores
// the default, which copies Stdin to Stdout (like cat) and exits 0. The
// container need not exist yet.
func (f *Runtime) SetExecSession(id string, fn SessionFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions == nil {
		f.sessions = map[string]SessionFunc{}
	}
	if fn == nil {
		delete(f.sessions, id)
		return
	}
	f.sessions[id] = fn
}

// SetStats makes Stats report s for container id while it runs (s.ID and
// s.At are filled in); running containers without stats report zeros.
func (f *Runtime) SetStats(id string, s runtime.ContainerStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stats == nil {
		f.stats = map[string]runtime.ContainerStats{}
	}
	f.stats[id] = s
}

// ExecSession calls the function SetExecSession set for container id,
// which must be running, outside the fake's lock.
func (f *Runtime) ExecSession(ctx context.Context, id string, opts runtime.SessionOptions) (int, error) {
	f.mu.Lock()
	if err := f.fail("ExecSession"); err != nil {
		f.mu.Unlock()
		return -1, err
	}
	c, err := f.get(id)
	if err != nil {
		f.mu.Unlock()
		return -1, err
	}
	if c.status.State != runtime.StateRunning {
		f.mu.Unlock()
		return -1, fmt.Errorf("fake runtime: exec in container %s: it is %s, not running", id, c.status.State)
	}
	fn := f.sessions[id]
	f.mu.Unlock()

	if len(opts.Cmd) == 0 {
		return -1, fmt.Errorf("fake runtime: exec in container %s: empty command", id)
	}
	opts.Cmd = slices.Clone(opts.Cmd)
	if fn != nil {
		return fn(ctx, opts)
	}
	if opts.Stdin != nil {
		if _, err := io.Copy(orDiscard(opts.Stdout), opts.Stdin); err != nil {
			return -1, fmt.Errorf("fake runtime: exec in container %s: %w", id, err)
		}
	}
	return 0, nil
}

// Stats returns what SetStats set for the running containers among ids
// (all running ones when ids is empty), sorted by id.
func (f *Runtime) Stats(ctx context.Context, ids []string) ([]runtime.ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Stats"); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		for id := range f.containers {
			ids = append(ids, id)
		}
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	now := time.Now()
	var out []runtime.ContainerStats
	for _, id := range ids {
		c, ok := f.containers[id]
		if !ok || c.status.State != runtime.StateRunning {
			continue
		}
		s := f.stats[id]
		s.ID, s.At = id, now
		out = append(out, s)
	}
	return out, nil
}

// orDiscard returns w, or io.Discard when w is nil.
func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
