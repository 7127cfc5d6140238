package runtime

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// FakeExecFunc answers a Fake's Exec of cmd.
type FakeExecFunc func(cmd []string) (ExecResult, error)

// SetExec makes Exec in container id call fn; nil restores the default,
// which succeeds with exit code 0 and no output. The container need not
// exist yet.
func (f *Fake) SetExec(id string, fn FakeExecFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.execs == nil {
		f.execs = map[string]FakeExecFunc{}
	}
	if fn == nil {
		delete(f.execs, id)
		return
	}
	f.execs[id] = fn
}

// SetImageHealthcheck makes ImageHealthcheck of ref return hc (nil: none).
func (f *Fake) SetImageHealthcheck(ref string, hc *berthv1.HealthCheck) error {
	name, err := NormalizeImageRef(ref)
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
func (f *Fake) Exec(ctx context.Context, id string, cmd []string) (ExecResult, error) {
	f.mu.Lock()
	if err := f.fail("Exec"); err != nil {
		f.mu.Unlock()
		return ExecResult{}, err
	}
	c, err := f.get(id)
	if err != nil {
		f.mu.Unlock()
		return ExecResult{}, err
	}
	if c.status.State != StateRunning {
		f.mu.Unlock()
		return ExecResult{}, fmt.Errorf("fake runtime: exec in container %s: it is %s, not running", id, c.status.State)
	}
	fn := f.execs[id]
	f.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return ExecResult{}, fmt.Errorf("fake runtime: exec in container %s: %w", id, err)
	}
	if fn == nil {
		return ExecResult{}, nil
	}
	res, err := fn(slices.Clone(cmd))
	if len(res.Output) > MaxExecOutput {
		res.Output = res.Output[:MaxExecOutput]
	}
	return res, err
}

// ImageHealthcheck returns what SetImageHealthcheck set for ref; the image
// must have been added.
func (f *Fake) ImageHealthcheck(ctx context.Context, ref string) (*berthv1.HealthCheck, error) {
	name, err := NormalizeImageRef(ref)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("ImageHealthcheck"); err != nil {
		return nil, err
	}
	if _, ok := f.images[name]; !ok {
		return nil, fmt.Errorf("fake runtime: image %s is not on this node; load it with `berth image import`: %w", name, ErrImageNotFound)
	}
	hc, ok := f.healthchecks[name]
	if !ok {
		return nil, nil
	}
	return proto.CloneOf(hc), nil
}
