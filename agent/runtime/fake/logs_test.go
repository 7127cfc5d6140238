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
	cut2 := time.Now()
	if err := f.WriteLog("c", runtime.Stdout, "last"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts runtime.LogOptions
		want []string
	}{
		{"since", runtime.LogOptions{Tail: -1, Since: cut}, []string{"new1", "new2", "new3", "last"}},
		{"since, then tail", runtime.LogOptions{Tail: 2, Since: cut}, []string{"new3", "last"}},
		{"tail larger than what is since", runtime.LogOptions{Tail: 10, Since: cut}, []string{"new1", "new2", "new3", "last"}},
		{"no since", runtime.LogOptions{Tail: -1}, []string{"old", "new1", "new2", "new3", "last"}},
		{"until", runtime.LogOptions{Tail: -1, Until: cut}, []string{"old"}},
		{"since and until", runtime.LogOptions{Tail: -1, Since: cut, Until: cut2}, []string{"new1", "new2", "new3"}},
		{"until, then tail", runtime.LogOptions{Tail: 1, Until: cut2}, []string{"new3"}},
		{"until, following", runtime.LogOptions{Tail: -1, Until: cut, Follow: true}, []string{"old"}},
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
