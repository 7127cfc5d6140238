package fake

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"zero", Options{}, false},
		{"simulated node", Options{StartLatency: 60 * time.Millisecond, FailureRate: 0.01, AnyImage: true}, false},
		{"every start fails", Options{FailureRate: 1}, false},
		{"negative latency", Options{StartLatency: -time.Millisecond}, true},
		{"rate above one", Options{FailureRate: 1.5}, true},
		{"negative rate", Options{FailureRate: -0.1}, true},
		{"rate NaN", Options{FailureRate: math.NaN()}, true},
		{"negative crash delay", Options{CrashAfter: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWith(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Errorf("NewWith(%+v) = %v, want error %v", tt.opts, err, tt.wantErr)
			}
		})
	}
}

// startSimulated creates and starts container id on f from an image that
// an AnyImage pull brought.
func startSimulated(t *testing.T, ctx context.Context, f *Runtime, id string) runtime.Status {
	t.Helper()
	if _, err := f.Pull(ctx, "localhost/busybox:latest", runtime.PullOptions{}); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if err := f.Create(ctx, runtime.ContainerSpec{ID: id, Image: "localhost/busybox:latest"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	st, err := f.Start(ctx, id)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return st
}

func TestFakeFailureRateFailsStarts(t *testing.T) {
	ctx := context.Background()
	f, err := NewWith(Options{FailureRate: 1, AnyImage: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Pull(ctx, "busybox", runtime.PullOptions{}); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "c1", Image: "busybox"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := f.Start(ctx, "c1"); err == nil {
		t.Fatal("Start succeeded, want the simulated failure")
	}
	if st, err := f.Inspect(ctx, "c1"); err != nil || st.State == runtime.StateRunning {
		t.Errorf("Inspect after the failed start = %+v, %v; want not running", st, err)
	}
}

func TestFakeCrashAfterCrashesStartedContainers(t *testing.T) {
	ctx := context.Background()
	f, err := NewWith(Options{FailureRate: 1, CrashAfter: time.Millisecond, AnyImage: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := startSimulated(t, ctx, f, "c1"); st.State != runtime.StateRunning {
		t.Fatalf("Start = %+v, want running before the crash", st)
	}
	ch, err := f.Wait(ctx, "c1")
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if exit := <-ch; exit.Code != 1 || exit.Err != nil {
		t.Errorf("Wait = %+v, want exit code 1", exit)
	}
	if st, err := f.Inspect(ctx, "c1"); err != nil || st.State != runtime.StateStopped || st.ExitCode != 1 {
		t.Errorf("Inspect after the crash = %+v, %v; want stopped with code 1", st, err)
	}
}

func TestFakeStartLatencyHonoursTheContext(t *testing.T) {
	f, err := NewWith(Options{StartLatency: time.Hour, AnyImage: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := f.Pull(ctx, "busybox", runtime.PullOptions{}); err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "c1", Image: "busybox"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	cancel()
	if _, err := f.Start(ctx, "c1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context = %v, want context.Canceled", err)
	}
	if st, err := f.Inspect(context.Background(), "c1"); err != nil || st.State != runtime.StateCreated {
		t.Errorf("Inspect = %+v, %v; want still created", st, err)
	}
}

func TestFakeAnyImagePulls(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, ref, as  string
		wantName       string
		wantDigestFrom string // "" means derived from wantName
	}{
		{name: "tag", ref: "localhost/busybox:latest", wantName: "localhost/busybox:latest"},
		{name: "short name", ref: "busybox", wantName: "docker.io/library/busybox:latest"},
		{name: "pinned", ref: "localhost/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", as: "localhost/web:1",
			wantName: "localhost/web:1", wantDigestFrom: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var digests []string
			for range 2 { // two nodes agree on the digest
				f, err := NewWith(Options{AnyImage: true})
				if err != nil {
					t.Fatal(err)
				}
				im, err := f.Pull(ctx, tt.ref, runtime.PullOptions{Name: tt.as})
				if err != nil {
					t.Fatalf("Pull(%s): %v", tt.ref, err)
				}
				if im.Name != tt.wantName {
					t.Errorf("Pull(%s) stored %s, want %s", tt.ref, im.Name, tt.wantName)
				}
				if ok, err := f.ImageExists(ctx, tt.wantName); err != nil || !ok {
					t.Errorf("ImageExists(%s) = %v, %v after the pull", tt.wantName, ok, err)
				}
				digests = append(digests, im.Digest)
			}
			want := tt.wantDigestFrom
			if want == "" {
				want = anyImageDigest(tt.wantName)
			}
			for _, d := range digests {
				if d != want {
					t.Errorf("digests %v, want %s on every node", digests, want)
				}
			}
		})
	}
}

func TestFakeWithoutAnyImageNeedsARegistry(t *testing.T) {
	f, err := NewWith(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Pull(context.Background(), "busybox", runtime.PullOptions{}); !errors.Is(err, runtime.ErrImageNotFound) {
		t.Errorf("Pull = %v, want ErrImageNotFound", err)
	}
}
