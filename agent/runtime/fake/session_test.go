package fake

import (
	"context"
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
)

func TestFakeExecSessionAndStats(t *testing.T) {
	ctx := context.Background()
	f := New()
	if err := f.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := f.Create(ctx, runtime.ContainerSpec{ID: id, Image: "busybox"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	code, err := f.ExecSession(ctx, "a", runtime.SessionOptions{Cmd: []string{"cat"}, Stdin: strings.NewReader("in"), Stdout: &out})
	if err != nil || code != 0 || out.String() != "in" {
		t.Errorf("default session = %d, %v, output %q; want 0, nil, %q", code, err, out.String(), "in")
	}
	f.SetExecSession("a", func(ctx context.Context, opts runtime.SessionOptions) (int, error) { return 3, nil })
	if code, err := f.ExecSession(ctx, "a", runtime.SessionOptions{Cmd: []string{"x"}}); err != nil || code != 3 {
		t.Errorf("set session = %d, %v; want 3, nil", code, err)
	}
	if _, err := f.ExecSession(ctx, "b", runtime.SessionOptions{Cmd: []string{"x"}}); err == nil {
		t.Errorf("session in a container that is not running succeeded")
	}

	f.SetStats("a", runtime.ContainerStats{CPUUsageNanos: 5, MemoryBytes: 7})
	got, err := f.Stats(ctx, nil)
	if err != nil || len(got) != 1 || got[0].ID != "a" || got[0].CPUUsageNanos != 5 || got[0].MemoryBytes != 7 || got[0].At.IsZero() {
		t.Errorf("Stats() = %+v, %v; want a's", got, err)
	}
	if got, _ := f.Stats(ctx, []string{"b", "missing"}); len(got) != 0 {
		t.Errorf("Stats(b, missing) = %+v, want none", got)
	}
}
