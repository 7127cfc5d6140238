package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	ctd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
)

// execCleanupTimeout bounds killing and deleting an exec'd process after
// the caller's context ended, so a wedged shim cannot hold Exec forever.
const execCleanupTimeout = 10 * time.Second

// Exec runs cmd in running container id with the container's process
// settings (env, user, working dir, capabilities) and returns its exit code
// and output. When ctx ends first the process is killed and deleted, and
// the error wraps ctx.Err().
func (c *Runtime) Exec(ctx context.Context, id string, cmd []string) (runtime.ExecResult, error) {
	if len(cmd) == 0 {
		return runtime.ExecResult{}, fmt.Errorf("runtime: exec in container %s: empty command", id)
	}
	ctx = c.ctx(ctx)
	task, pspec, err := c.processSpec(ctx, id)
	if err != nil {
		return runtime.ExecResult{}, err
	}
	pspec.Args = cmd
	pspec.Terminal = false

	execID, err := newExecID()
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	out := &limitedBuffer{max: runtime.MaxExecOutput}
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	// Cleanup must run even when ctx has ended: it is what makes sure no
	// process is left behind in the container.
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execCleanupTimeout)
	defer cancel()
	defer func() { _, _ = proc.Delete(cleanupCtx, ctd.WithProcessKill) }()

	// Wait before Start, so a quick exit cannot be missed.
	exited, err := proc.Wait(cleanupCtx)
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		if ctx.Err() != nil {
			// The deadline passed while the process started (a loaded
			// node): say so, as once it runs.
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return runtime.ExecResult{}, fmt.Errorf("runtime: exec %q in container %s: %w", cmd[0], id, err)
	}
	var st ctd.ExitStatus
	select {
	case st = <-exited:
	case <-ctx.Done():
		if err := proc.Kill(cleanupCtx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return runtime.ExecResult{}, fmt.Errorf("runtime: exec in container %s: kill after %w: %w", id, ctx.Err(), err)
		}
		select {
		case <-exited:
		case <-cleanupCtx.Done():
		}
		return runtime.ExecResult{}, fmt.Errorf("runtime: exec %q in container %s: %w", cmd[0], id, ctx.Err())
	}
	code, _, err := st.Result()
	if err != nil {
		return runtime.ExecResult{}, fmt.Errorf("runtime: exec in container %s: %w", id, err)
	}
	// The output is copied by goroutines of ours; they end at EOF, after
	// the process exits.
	proc.IO().Wait()
	return runtime.ExecResult{ExitCode: int(code), Output: out.Bytes()}, nil
}

// newExecID returns a process id that is unique within a container.
func newExecID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "berth-exec-" + hex.EncodeToString(b), nil
}

// limitedBuffer keeps the first max bytes written to it and discards the
// rest without failing the writer. Stdout and stderr write concurrently.
type limitedBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what was kept.
func (b *limitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// dockerHealthConfig is an image config's config.Healthcheck, a Docker
// extension the OCI image spec does not define. Durations are nanoseconds.
type dockerHealthConfig struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// ImageHealthcheck reads the HEALTHCHECK from image ref's config blob; nil
// when it has none.
func (c *Runtime) ImageHealthcheck(ctx context.Context, ref string) (*berthv1.HealthCheck, error) {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return nil, err
	}
	ctx = c.ctx(ctx)
	image, err := c.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("runtime: image %s is not on this node; load it with `berth image import`: %w", name, runtime.ErrImageNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: health check of image %s: %w", name, err)
	}
	desc, err := image.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("runtime: health check of image %s: config descriptor: %w", name, err)
	}
	blob, err := content.ReadBlob(ctx, c.client.ContentStore(), desc)
	if err != nil {
		return nil, fmt.Errorf("runtime: health check of image %s: read config: %w", name, err)
	}
	return parseImageHealthcheck(blob)
}

// parseImageHealthcheck decodes config.Healthcheck from an image config.
func parseImageHealthcheck(blob []byte) (*berthv1.HealthCheck, error) {
	var cfg struct {
		Config struct {
			Healthcheck *dockerHealthConfig `json:"Healthcheck"`
		} `json:"config"`
	}
	if err := json.Unmarshal(blob, &cfg); err != nil {
		return nil, fmt.Errorf("runtime: decode image config: %w", err)
	}
	h := cfg.Config.Healthcheck
	if h == nil {
		return nil, nil
	}
	if h.Retries < 0 {
		return nil, errors.New("runtime: image config: Healthcheck.Retries is negative")
	}
	return &berthv1.HealthCheck{
		Test:          h.Test,
		Interval:      durationOrNil(h.Interval),
		Timeout:       durationOrNil(h.Timeout),
		StartPeriod:   durationOrNil(h.StartPeriod),
		StartInterval: durationOrNil(h.StartInterval),
		Retries:       uint32(h.Retries),
	}, nil
}

// durationOrNil keeps "not set" (zero) apart from a set duration.
func durationOrNil(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}
