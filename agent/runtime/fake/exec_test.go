package fake

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const busyboxRef = "localhost/busybox:latest"

func TestFakeExec(t *testing.T) {
	f := New()
	ctx := context.Background()
	if err := f.AddImage(busyboxRef); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Exec(ctx, "c", []string{"true"}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Exec in a missing container: %v, want ErrNotFound", err)
	}
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "c", Image: busyboxRef}); err != nil {
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
	f.SetExec("c", func(cmd []string) (runtime.ExecResult, error) {
		got = cmd
		return runtime.ExecResult{ExitCode: 2, Output: bytes.Repeat([]byte("x"), 2*runtime.MaxExecOutput)}, nil
	})
	res, err := f.Exec(ctx, "c", []string{"check", "now"})
	if err != nil || res.ExitCode != 2 || len(res.Output) != runtime.MaxExecOutput || strings.Join(got, " ") != "check now" {
		t.Errorf("Exec = code %d, %d bytes, %v, cmd %q; want 2, %d bytes, cmd [check now]", res.ExitCode, len(res.Output), err, got, runtime.MaxExecOutput)
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
	if _, err := f.ImageHealthcheck(ctx, "localhost/absent"); !errors.Is(err, runtime.ErrImageNotFound) {
		t.Errorf("ImageHealthcheck of a missing image: %v, want ErrImageNotFound", err)
	}
}
