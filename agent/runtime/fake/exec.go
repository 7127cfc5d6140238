package fake

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
)

// ExecFunc answers a Runtime's Exec of cmd.
type ExecFunc func(cmd []string) (runtime.ExecResult, error)

// SetExec makes Exec in container id call fn; nil restores the default,
// which succeeds with exit code 0 and no output. The container need not
// exist yet.
func (f *Runtime) SetExec(id string, fn ExecFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.execs == nil {
		f.execs = map[string]ExecFunc{}
	}
	if fn == nil {
		delete(f.execs, id)
		return
	}
	f.execs[id] = fn
}

// SetImageHealthcheck makes ImageHealthcheck of ref return hc (nil: none).
func (f *Runtime) SetImageHealthcheck(ref string, hc *berthv1.HealthCheck) error {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.healthchecks == nil {
		f.healthchecks = map[string]*berthv1.HealthCheck{}
	}
	if hc == nil {
		delete(f.healthchecks, name)
		return nil
	}
	f.healthchecks[name] = proto.CloneOf(hc)
	return nil
}

// Exec calls the function SetExec set for container id, which must be
// running, outside the fake's lock, so the function may call the fake.
func (f *Runtime) Exec(ctx context.Context, id string, cmd []string) (runtime.ExecResult, error) {
	f.mu.Lock()
	if err := f.fail("Exec"); err != nil {
		f.mu.Unlock()
		return runtime.ExecResult{}, err
	}
	c, err := f.get(id)
	if err != nil {
		f.mu.Unlock()
		return runtime.ExecResult{}, err
	}
	if c.status.State != runtime.StateRunning {
		f.mu.Unlock()
		return runtime.ExecResult{}, fmt.Errorf("fake runtime: exec in container %s: it is %s, not running", id, c.status.State)
	}
	fn := f.execs[id]
	f.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return runtime.ExecResult{}, fmt.Errorf("fake runtime: exec in container %s: %w", id, err)
	}
	if fn == nil {
		return runtime.ExecResult{}, nil
	}
	res, err := fn(slices.Clone(cmd))
	if len(res.Output) > runtime.MaxExecOutput {
		res.Output = res.Output[:runtime.MaxExecOutput]
	}
	return res, err
}

// ImageHealthcheck returns what SetImageHealthcheck set for ref; the image
// must have been added.
func (f *Runtime) ImageHealthcheck(ctx context.Context, ref string) (*berthv1.HealthCheck, error) {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("ImageHealthcheck"); err != nil {
		return nil, err
	}
	if _, ok := f.images[name]; !ok {
		return nil, fmt.Errorf("fake runtime: image %s is not on this node; load it with `berth image import`: %w", name, runtime.ErrImageNotFound)
	}
	hc, ok := f.healthchecks[name]
	if !ok {
		return nil, nil
	}
	return proto.CloneOf(hc), nil
}
