package worker

import (
	"context"
	"errors"
	"github.com/berthproject/berth/internal/metrics/metricstest"
	"testing"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// fakeImages is an Images that reports one progress step and then adds
// the image to the runtime, fails, or waits for its context to end.
type fakeImages struct {
	rt      *recordingRuntime
	err     error
	block   bool
	started chan struct{}
}

func (f *fakeImages) Present(ctx context.Context, img, dgst string) (bool, error) {
	return false, nil
}

func (f *fakeImages) Ensure(ctx context.Context, img, dgst string, progress func(image.Progress)) (runtime.Image, error) {
	if f.started != nil {
		close(f.started)
	}
	if f.block {
		<-ctx.Done()
		return runtime.Image{}, ctx.Err()
	}
	if f.err != nil {
		return runtime.Image{}, f.err
	}
	progress(image.Progress{From: "peer beta", Done: 12 << 20, Total: 30 << 20})
	if err := f.rt.AddImageDigest(img, dgst); err != nil {
		return runtime.Image{}, err
	}
	return runtime.Image{Name: img, Digest: dgst}, nil
}

func TestMissingImageIsPulledWithProgress(t *testing.T) {
	rt := newRecordingRuntime()
	h := newHarness(t, rt)
	h.w.SetImages(&fakeImages{rt: rt})
	tk := newTask("t1")
	tk.Spec.Image, tk.Spec.ImageDigest = "registry.local/web:1", "sha256:abc"
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
	h.expect("t1", accepted, preparing)
	st := h.expect("t1", preparing)
	if want := "pulling 40% (12.0 MiB of 30.0 MiB) from peer beta"; st.Message != want {
		t.Fatalf("progress message %q, want %q", st.Message, want)
	}
	st = h.expect("t1", starting, running)
	if st.Message != "" {
		t.Errorf("running task keeps message %q", st.Message)
	}
}

func TestFailedPullRejectsTheTask(t *testing.T) {
	rt := newRecordingRuntime()
	h := newHarness(t, rt)
	why := "image registry.local/web:1: not on peers beta; registry: 401 Unauthorized — run `berth login registry.local`"
	h.w.SetImages(&fakeImages{rt: rt, err: errors.New(why)})
	tk := newTask("t1")
	tk.Spec.Image = "registry.local/web:1"
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
	st := h.expect("t1", accepted, preparing, rejected)
	if st.Err != why {
		t.Fatalf("rejection %q, want %q", st.Err, why)
	}
	if n := rt.createCount(); n != 0 {
		t.Fatalf("%d containers created without the image", n)
	}
	if got := metricstest.Values(t, h.w.Collectors()...)[`berth_image_pull_failures_total{registry="registry.local"}`]; got != 1 {
		t.Errorf(`berth_image_pull_failures_total{registry="registry.local"} = %v, want 1`, got)
	}
}

func TestRemovingATaskCutsItsPullShort(t *testing.T) {
	rt := newRecordingRuntime()
	h := newHarness(t, rt)
	images := &fakeImages{rt: rt, block: true, started: make(chan struct{})}
	h.w.SetImages(images)
	tk := newTask("t1")
	tk.Spec.Image = "registry.local/web:1"
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
	h.expect("t1", accepted, preparing)
	<-images.started
	h.w.Assign(&berthv1.Assignments{Removed: []string{"t1"}})
	// The runner leaves its pull and cleans up instead of waiting on it.
	rt.waitRemoved(t, "t1")
	h.w.Wait()
	if got, ok := metricstest.Values(t, h.w.Collectors()...)[`berth_image_pull_failures_total{registry="registry.local"}`]; ok {
		t.Errorf("a pull cut short because its task left counted as a failure (%v)", got)
	}
}

// fakeVerifier refuses the tasks it is told to.
type fakeVerifier struct{ refuse map[string]error }

func (v fakeVerifier) Verify(_ context.Context, task *berthv1.Task) error {
	return v.refuse[task.GetMeta().GetId()]
}

func TestUntrustedImageRejectsTheTask(t *testing.T) {
	rt := newRecordingRuntime()
	h := newHarness(t, rt)
	why := `service web: image busybox (digest sha256:abc) is refused by trust policy "docker.io/**": no signature`
	h.w.SetVerifier(fakeVerifier{refuse: map[string]error{"t1": errors.New(why)}})
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{newTask("t1"), newTask("t2")}})
	st := h.expect("t1", accepted, preparing, rejected)
	if st.Err != why {
		t.Fatalf("rejection %q, want %q", st.Err, why)
	}
	h.expect("t2", accepted, preparing, starting, running)
	if n := rt.createCount(); n != 1 {
		t.Fatalf("%d containers created, want only the trusted task's", n)
	}
}
