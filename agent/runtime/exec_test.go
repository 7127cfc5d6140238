package runtime

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/testimage"
)

// startSleeper creates and starts a busybox container that sleeps, with env.
func startSleeper(t *testing.T, rt Runtime, id string, env []string) {
	t.Helper()
	ctx := context.Background()
	if err := rt.Create(ctx, ContainerSpec{ID: id, Image: busyboxRef, Command: []string{"sleep", "3600"}, Env: env}); err != nil {
		t.Fatalf("Create(%s): %v", id, err)
	}
	if _, err := rt.Start(ctx, id); err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
}

func TestContainerdExec(t *testing.T) {
	env := newTestEnv(t, nil)
	startSleeper(t, env.rt, "exec", []string{"PROBE_VAR=from-spec"})

	tests := []struct {
		name     string
		cmd      []string
		wantCode int
		wantOut  string
	}{
		{"exit code and output", []string{"sh", "-c", "echo hi; exit 3"}, 3, "hi\n"},
		{"container env", []string{"sh", "-c", "echo $PROBE_VAR"}, 0, "from-spec\n"},
		{"stderr", []string{"sh", "-c", "echo oops >&2; false"}, 1, "oops\n"},
		{"output cut to 4 KiB", []string{"sh", "-c", "yes | head -c 10000"}, 0, strings.Repeat("y\n", MaxExecOutput/2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := env.rt.Exec(ctx, "exec", tc.cmd)
			if err != nil {
				t.Fatalf("Exec(%q): %v", tc.cmd, err)
			}
			if res.ExitCode != tc.wantCode || string(res.Output) != tc.wantOut {
				t.Errorf("Exec(%q) = code %d output %q; want %d %q", tc.cmd, res.ExitCode, res.Output, tc.wantCode, tc.wantOut)
			}
		})
	}

	if _, err := env.rt.Exec(context.Background(), "exec", []string{"/no/such/binary"}); err == nil {
		t.Errorf("Exec of a missing binary succeeded, want error")
	}
	if _, err := env.rt.Exec(context.Background(), "missing", []string{"true"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Exec in a missing container: %v, want ErrNotFound", err)
	}
}

func TestContainerdExecTimeout(t *testing.T) {
	env := newTestEnv(t, nil)
	startSleeper(t, env.rt, "slow", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := env.rt.Exec(ctx, "slow", []string{"sleep", "3600"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec of a long sleep = %v, want context.DeadlineExceeded", err)
	}

	// Only the container's own process is left.
	nsCtx := namespaces.WithNamespace(context.Background(), env.ns)
	cont, err := env.rt.Client().LoadContainer(nsCtx, "slow")
	if err != nil {
		t.Fatalf("LoadContainer: %v", err)
	}
	task, err := cont.Task(nsCtx, nil)
	if err != nil {
		t.Fatalf("Task: %v", err)
	}
	pids, err := task.Pids(nsCtx)
	if err != nil {
		t.Fatalf("Pids: %v", err)
	}
	if len(pids) != 1 || pids[0].Pid != task.Pid() {
		t.Errorf("pids after a timed out exec = %+v, want only the container's %d", pids, task.Pid())
	}
}

func TestContainerdImageHealthcheck(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	files, err := testimage.BusyboxFiles(testBusybox)
	if err != nil {
		t.Fatalf("BusyboxFiles: %v", err)
	}
	const ref = "localhost/healthy:latest"
	var buf bytes.Buffer
	err = testimage.WriteOCIArchive(&buf, ref, files, testimage.Config{
		Cmd: []string{"sh"},
		Healthcheck: &testimage.HealthConfig{
			Test:          []string{"CMD-SHELL", "wget -q -O- localhost"},
			Interval:      10 * time.Second,
			Timeout:       2 * time.Second,
			StartPeriod:   time.Minute,
			StartInterval: time.Second,
			Retries:       5,
		},
	})
	if err != nil {
		t.Fatalf("WriteOCIArchive: %v", err)
	}
	if _, err := env.rt.ImportImage(ctx, &buf); err != nil {
		t.Fatalf("ImportImage: %v", err)
	}

	want := &berthv1.HealthCheck{
		Test:          []string{"CMD-SHELL", "wget -q -O- localhost"},
		Interval:      durationpb.New(10 * time.Second),
		Timeout:       durationpb.New(2 * time.Second),
		StartPeriod:   durationpb.New(time.Minute),
		StartInterval: durationpb.New(time.Second),
		Retries:       5,
	}
	tests := []struct {
		ref  string
		want *berthv1.HealthCheck
	}{
		{ref, want},
		{busyboxRef, nil},
	}
	for _, tc := range tests {
		got, err := env.rt.ImageHealthcheck(ctx, tc.ref)
		if err != nil {
			t.Fatalf("ImageHealthcheck(%s): %v", tc.ref, err)
		}
		if !proto.Equal(got, tc.want) {
			t.Errorf("ImageHealthcheck(%s) = %v, want %v", tc.ref, got, tc.want)
		}
	}
	if _, err := env.rt.ImageHealthcheck(ctx, "localhost/absent"); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("ImageHealthcheck of a missing image: %v, want ErrImageNotFound", err)
	}
}

func TestFakeExec(t *testing.T) {
	f := NewFake()
	ctx := context.Background()
	if err := f.AddImage(busyboxRef); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Exec(ctx, "c", []string{"true"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Exec in a missing container: %v, want ErrNotFound", err)
	}
	if err := f.Create(ctx, ContainerSpec{ID: "c", Image: busyboxRef}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Exec(ctx, "c", []string{"true"}); err == nil {
		t.Errorf("Exec in a created container succeeded, want error")
	}
	if _, err := f.Start(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if res, err := f.Exec(ctx, "c", []string{"true"}); err != nil || res.ExitCode != 0 {
		t.Errorf("default Exec = %+v, %v; want exit 0", res, err)
	}
	var got []string
	f.SetExec("c", func(cmd []string) (ExecResult, error) {
		got = cmd
		return ExecResult{ExitCode: 2, Output: bytes.Repeat([]byte("x"), 2*MaxExecOutput)}, nil
	})
	res, err := f.Exec(ctx, "c", []string{"check", "now"})
	if err != nil || res.ExitCode != 2 || len(res.Output) != MaxExecOutput || strings.Join(got, " ") != "check now" {
		t.Errorf("Exec = code %d, %d bytes, %v, cmd %q; want 2, %d bytes, cmd [check now]", res.ExitCode, len(res.Output), err, got, MaxExecOutput)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Exec(cctx, "c", []string{"true"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec with an ended context: %v, want context.Canceled", err)
	}

	if hc, err := f.ImageHealthcheck(ctx, busyboxRef); err != nil || hc != nil {
		t.Errorf("ImageHealthcheck before Set = %v, %v; want nil, nil", hc, err)
	}
	want := &berthv1.HealthCheck{Test: []string{"CMD", "true"}, Retries: 2}
	if err := f.SetImageHealthcheck("localhost/busybox", want); err != nil {
		t.Fatal(err)
	}
	if hc, err := f.ImageHealthcheck(ctx, busyboxRef); err != nil || !proto.Equal(hc, want) {
		t.Errorf("ImageHealthcheck = %v, %v; want %v", hc, err, want)
	}
	if _, err := f.ImageHealthcheck(ctx, "localhost/absent"); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("ImageHealthcheck of a missing image: %v, want ErrImageNotFound", err)
	}
}
