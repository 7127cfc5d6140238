package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// progressPeriod is how often a pull's progress reaches the task status:
// often enough to watch, rarely enough not to flood the control plane.
const progressPeriod = 500 * time.Millisecond

// Images fetches the image a task runs. image.Puller implements it.
type Images interface {
	// Ensure makes sure image, pinned to manifest digest dgst when set, is
	// on the node, calling progress as it arrives.
	Ensure(ctx context.Context, image, dgst string, progress func(image.Progress)) (runtime.Image, error)
	// Present reports whether image, pinned to dgst when set, is on the
	// node already, so that Ensure would fetch nothing.
	Present(ctx context.Context, image, dgst string) (bool, error)
}

// SetImages makes the worker fetch missing images with images; without it
// a task whose image is missing is rejected. Call it before Start.
func (w *Worker) SetImages(images Images) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.images = images
}

// Verifier checks a task's image against its trust policy before the
// task's container is made. image.Trust implements it.
type Verifier interface {
	Verify(ctx context.Context, task *berthv1.Task) error
}

// SetVerifier makes the worker verify each task's image with v before it
// creates the container; a task whose image fails is rejected. Call it
// before Start.
func (w *Worker) SetVerifier(v Verifier) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.verifier = v
}

// verifyImage checks the task's image against its trust policy, when the
// worker has a verifier.
func (r *runner) verifyImage(ctx context.Context, task *berthv1.Task) error {
	r.w.mu.Lock()
	v := r.w.verifier
	r.w.mu.Unlock()
	if v == nil {
		return nil
	}
	return v.Verify(ctx, task)
}

// ensureImage makes sure the task's image is on the node, reporting the
// pull's progress in the status message while the task is preparing. A
// pull is cut short when the task stops being wanted.
func (r *runner) ensureImage(ctx context.Context, spec *berthv1.ServiceSpec) error {
	r.w.mu.Lock()
	images := r.w.images
	r.w.mu.Unlock()
	if images == nil {
		ok, err := r.w.rt.ImageExists(ctx, spec.GetImage())
		if err != nil {
			return fmt.Errorf("checking image %s: %w", spec.GetImage(), err)
		}
		if !ok {
			return fmt.Errorf("image %s is not on this node: load it with `berth image import`", spec.GetImage())
		}
		return nil
	}
	// Only a fetch takes a pull slot: starting from an image already here
	// is the common case and costs one lookup.
	if ok, err := images.Present(ctx, spec.GetImage(), spec.GetImageDigest()); err != nil {
		return fmt.Errorf("checking image %s: %w", spec.GetImage(), err)
	} else if ok {
		return nil
	}
	release, ok := r.takeSlot(ctx, r.w.pulls, "pull")
	if !ok {
		return fmt.Errorf("waiting to pull image %s: %w", spec.GetImage(), context.Canceled)
	}
	defer release()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := r.cancelWhenLeaving(pctx, cancel)
	defer stop()

	// The progress callback runs on the puller's goroutine: mu orders its
	// status updates with this runner's, and closed stops them once the
	// pull returned.
	// Progress also tells a fetch from an image already here, which
	// the pull time leaves out.
	var (
		mu      sync.Mutex
		closed  bool
		fetched bool
		last    time.Time
	)
	start := time.Now()
	_, err := images.Ensure(pctx, spec.GetImage(), spec.GetImageDigest(), func(p image.Progress) {
		mu.Lock()
		defer mu.Unlock()
		fetched = true
		if closed || time.Since(last) < progressPeriod {
			return
		}
		last = time.Now()
		r.set(berthv1.TaskState_TASK_STATE_PREPARING, func(st *berthv1.TaskStatus) { st.Message = p.String() })
	})
	mu.Lock()
	closed = true
	if err == nil && fetched {
		r.w.metrics.pull.Observe(time.Since(start).Seconds())
	}
	// A pull cut short because the task left is no failure.
	if err != nil && pctx.Err() == nil {
		r.w.metrics.pullFailed(spec.GetImage())
	}
	mu.Unlock()
	return err
}

// cancelWhenLeaving calls cancel when the task is removed or no longer
// desired running while the runner is busy in a long step. stop ends the
// watch; a change it consumed is signalled again for the run loop.
func (r *runner) cancelWhenLeaving(ctx context.Context, cancel context.CancelFunc) (stop func()) {
	done := make(chan struct{})
	var missed bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-r.changed:
				missed = true
				if r.leaving() {
					cancel()
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if missed {
			r.signal()
		}
	}
}

// leaving reports whether the task was removed or is no longer desired
// running.
func (r *runner) leaving() bool {
	task, removed := r.snapshot()
	return removed || task.GetDesiredState() != berthv1.TaskState_TASK_STATE_RUNNING
}
