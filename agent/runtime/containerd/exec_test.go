package containerd

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

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/testimage"
)

// startSleeper creates and starts a busybox container that sleeps, with env.
func startSleeper(t *testing.T, rt runtime.Runtime, id string, env []string) {
	t.Helper()
	ctx := context.Background()
	if err := rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: busyboxRef, Command: []string{"sleep", "3600"}, Env: env}); err != nil {
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
		{"output cut to 4 KiB", []string{"sh", "-c", "yes | head -c 10000"}, 0, strings.Repeat("y\n", runtime.MaxExecOutput/2)},
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
	if _, err := env.rt.Exec(context.Background(), "missing", []string{"true"}); !errors.Is(err, runtime.ErrNotFound) {
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
	if _, err := env.rt.ImageHealthcheck(ctx, "localhost/absent"); !errors.Is(err, runtime.ErrImageNotFound) {
		t.Errorf("ImageHealthcheck of a missing image: %v, want ErrImageNotFound", err)
	}
}
