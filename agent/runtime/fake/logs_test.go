package fake

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

func TestFakeLogsSince(t *testing.T) {
	ctx := context.Background()
	f := newFakeWithImage(t)
	if err := f.Create(ctx, runtime.ContainerSpec{ID: "c", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteLog("c", runtime.Stdout, "old"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	for _, l := range []string{"new1", "new2", "new3"} {
		if err := f.WriteLog("c", runtime.Stdout, l); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		opts runtime.LogOptions
		want []string
	}{
		{"since", runtime.LogOptions{Tail: -1, Since: cut}, []string{"new1", "new2", "new3"}},
		{"since, then tail", runtime.LogOptions{Tail: 2, Since: cut}, []string{"new2", "new3"}},
		{"tail larger than what is since", runtime.LogOptions{Tail: 10, Since: cut}, []string{"new1", "new2", "new3"}},
		{"no since", runtime.LogOptions{Tail: -1}, []string{"old", "new1", "new2", "new3"}},
	}
	for _, tt := range tests {
		var got []string
		err := f.Logs(ctx, "c", tt.opts, func(l runtime.LogLine) error {
			got = append(got, string(l.Line))
			return nil
		})
		if err != nil {
			t.Fatalf("%s: Logs: %v", tt.name, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: Logs = %q, want %q", tt.name, got, tt.want)
		}
	}
}
