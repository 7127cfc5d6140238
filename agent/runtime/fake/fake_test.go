package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/internal/testimage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newFakeWithImage(t *testing.T) *Runtime {
	t.Helper()
	f := New()
	if err := f.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFakeLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFakeWithImage(t)
	spec := runtime.ContainerSpec{ID: "c1", Image: "docker.io/library/busybox", Labels: map[string]string{"a": "b"},
		Ports: []runtime.Port{{Target: 80, Published: 8080, Protocol: "tcp"}}}
	if err := f.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if st, err := f.Inspect(ctx, "c1"); err != nil || st.State != runtime.StateCreated || st.Address == "" || len(st.Ports) != 1 {
		t.Fatalf("Inspect after Create = %+v, %v; want created with an address and the port", st, err)
	}
	st, err := f.Start(ctx, "c1")
	if err != nil || st.State != runtime.StateRunning || st.Pid == 0 {
		t.Fatalf("Start = %+v, %v; want running with a pid", st, err)
	}
	ch, err := f.Wait(ctx, "c1")
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := f.Exit("c1", 42); err != nil {
		t.Fatalf("Exit: %v", err)
	}
	if exit := <-ch; exit.Code != 42 || exit.Err != nil || exit.At.IsZero() {
		t.Errorf("Wait = %+v, want code 42 with a time", exit)
	}
	// Waiting after the exit still reports it.
	ch, err = f.Wait(ctx, "c1")
	if err != nil {
		t.Fatalf("Wait after exit: %v", err)
	}
	if exit := <-ch; exit.Code != 42 {
		t.Errorf("Wait after exit = %+v, want code 42", exit)
	}
	list, err := f.List(ctx)
	if err != nil || len(list) != 1 || list[0].State != runtime.StateStopped || list[0].ExitCode != 42 || list[0].Labels["a"] != "b" {
		t.Errorf("List = %+v, %v; want c1 stopped with 42 and its labels", list, err)
	}
	if err := f.Remove(ctx, "c1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := f.Inspect(ctx, "c1"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
	if err := f.Remove(ctx, "c1"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestFakeErrors(t *testing.T) {
	ctx := context.Background()
	f := newFakeWithImage(t)
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "dup", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected")
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"missing image", func() error { return f.Create(ctx, runtime.ContainerSpec{ID: "x", Image: "absent"}) }, runtime.ErrImageNotFound},
		{"duplicate", func() error { return f.Create(ctx, runtime.ContainerSpec{ID: "dup", Image: "busybox"}) }, runtime.ErrExists},
		{"start unknown", func() error { _, err := f.Start(ctx, "ghost"); return err }, runtime.ErrNotFound},
		{"wait not started", func() error { _, err := f.Wait(ctx, "dup"); return err }, runtime.ErrNotFound},
		{"stop unknown", func() error { return f.Stop(ctx, "ghost", "", time.Second) }, runtime.ErrNotFound},
		{"fail next", func() error {
			f.FailNext("Start", injected)
			_, err := f.Start(ctx, "dup")
			return err
		}, injected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
	// FailNext fails one call only.
	if _, err := f.Start(ctx, "dup"); err != nil {
		t.Errorf("Start after the injected failure: %v", err)
	}
}

func TestFakeStop(t *testing.T) {
	tests := []struct {
		name     string
		ignore   bool
		signal   string
		wantCode int32
	}{
		{"SIGTERM", false, "", 143},
		{"custom signal", false, "SIGINT", 130},
		{"ignored, killed after grace", true, "", 137},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFakeWithImage(t)
			if err := f.Create(ctx, runtime.ContainerSpec{ID: "c", Image: "busybox"}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Start(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if tc.ignore {
				if err := f.IgnoreStopSignal("c"); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Stop(ctx, "c", tc.signal, 10*time.Millisecond); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if st, _ := f.Inspect(ctx, "c"); st.State != runtime.StateStopped || st.ExitCode != tc.wantCode {
				t.Errorf("after Stop: %s code %d, want stopped with %d", st.State, st.ExitCode, tc.wantCode)
			}
			if err := f.Stop(ctx, "c", "", time.Second); err != nil {
				t.Errorf("Stop of a stopped container: %v", err)
			}
		})
	}
}

func TestFakeLogs(t *testing.T) {
	ctx := context.Background()
	f := newFakeWithImage(t)
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "c", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Start(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := f.WriteLog("c", runtime.Stdout, fmt.Sprint("line", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := logText(t, f, "c", 2); strings.Join(got, "|") != "line2|line3" {
		t.Errorf("Logs(tail 2) = %q", got)
	}

	// A follower sees every line, also those written while it follows, and
	// returns when the container exits.
	seen := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- f.Logs(ctx, "c", runtime.LogOptions{Follow: true, Tail: -1}, func(l runtime.LogLine) error {
			seen <- string(l.Line)
			return nil
		})
	}()
	if err := f.WriteLog("c", runtime.Stderr, "late"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"line1", "line2", "line3", "late"} {
		if got := <-seen; got != want {
			t.Errorf("follower saw %q, want %q", got, want)
		}
	}
	if err := f.Exit("c", 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("follow Logs: %v", err)
	}
}

func TestFakeImportImage(t *testing.T) {
	var buf bytes.Buffer
	files := []testimage.File{{Path: "/hello", Content: []byte("hi")}}
	if err := testimage.WriteOCIArchive(&buf, "localhost/tiny:1", files, testimage.Config{}); err != nil {
		t.Fatal(err)
	}
	f := New()
	imgs, err := f.ImportImage(context.Background(), &buf)
	if err != nil {
		t.Fatalf("ImportImage: %v", err)
	}
	if len(imgs) != 1 || imgs[0].Name != "localhost/tiny:1" {
		t.Errorf("ImportImage = %+v, want localhost/tiny:1", imgs)
	}
	if ok, err := f.ImageExists(context.Background(), "localhost/tiny:1"); !ok || err != nil {
		t.Errorf("ImageExists after import = %v, %v", ok, err)
	}
	if _, err := f.ImportImage(context.Background(), strings.NewReader("")); err == nil {
		t.Errorf("ImportImage of an empty archive succeeded, want error")
	}
}

// TestFakeConcurrent drives many containers at once, for the race detector.
func TestFakeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFakeWithImage(t)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("c", i)
			if err := f.Create(ctx, runtime.ContainerSpec{ID: id, Image: "busybox"}); err != nil {
				errs <- err
				return
			}
			if _, err := f.Start(ctx, id); err != nil {
				errs <- err
				return
			}
			ch, err := f.Wait(ctx, id)
			if err != nil {
				errs <- err
				return
			}
			if err := f.Stop(ctx, id, "", time.Second); err != nil {
				errs <- err
				return
			}
			<-ch
			if _, err := f.List(ctx); err != nil {
				errs <- err
				return
			}
			errs <- f.Remove(ctx, id)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if list, _ := f.List(ctx); len(list) != 0 {
		t.Errorf("%d containers left", len(list))
	}
}

func TestFakeWaitCancel(t *testing.T) {
	f := newFakeWithImage(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "c", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Start(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	ch, err := f.Wait(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if exit := <-ch; !errors.Is(exit.Err, context.Canceled) {
		t.Errorf("Wait after cancel = %+v, want context.Canceled", exit)
	}
}

func TestFakeOOMKill(t *testing.T) {
	ctx := context.Background()
	f := newFakeWithImage(t)
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "c", Image: "busybox", MemoryBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := f.OOMKill("c"); err == nil {
		t.Errorf("OOMKill of a created container succeeded, want an error")
	}
	if _, err := f.Start(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	ch, err := f.Wait(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.OOMKill("c"); err != nil {
		t.Fatalf("OOMKill: %v", err)
	}
	if exit := <-ch; exit.Code != 137 || !exit.OOMKilled || exit.Err != nil {
		t.Errorf("Wait = %+v, want code 137, OOM killed", exit)
	}
	if st, err := f.Inspect(ctx, "c"); err != nil || st.State != runtime.StateStopped || !st.OOMKilled {
		t.Errorf("Inspect = %+v, %v; want stopped, OOM killed", st, err)
	}
	// A new run starts with a clean slate.
	if _, err := f.Start(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := f.Exit("c", 1); err != nil {
		t.Fatal(err)
	}
	if st, err := f.Inspect(ctx, "c"); err != nil || st.OOMKilled {
		t.Errorf("Inspect after a plain exit = %+v, %v; want not OOM killed", st, err)
	}
}

// logText returns container id's output lines (all when tail < 0).
func logText(tb testing.TB, rt runtime.Runtime, id string, tail int64) []string {
	tb.Helper()
	var lines []string
	err := rt.Logs(context.Background(), id, runtime.LogOptions{Tail: tail}, func(l runtime.LogLine) error {
		lines = append(lines, string(l.Line))
		return nil
	})
	if err != nil {
		tb.Fatalf("Logs(%s): %v", id, err)
	}
	return lines
}
