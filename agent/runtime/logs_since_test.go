package runtime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestFakeLogsSince(t *testing.T) {
	ctx := context.Background()
	f := newFakeWithImage(t)
	if err := f.Create(ctx, ContainerSpec{ID: "c", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteLog("c", Stdout, "old"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	for _, l := range []string{"new1", "new2", "new3"} {
		if err := f.WriteLog("c", Stdout, l); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		opts LogOptions
		want []string
	}{
		{"since", LogOptions{Tail: -1, Since: cut}, []string{"new1", "new2", "new3"}},
		{"since, then tail", LogOptions{Tail: 2, Since: cut}, []string{"new2", "new3"}},
		{"tail larger than what is since", LogOptions{Tail: 10, Since: cut}, []string{"new1", "new2", "new3"}},
		{"no since", LogOptions{Tail: -1}, []string{"old", "new1", "new2", "new3"}},
	}
	for _, tt := range tests {
		var got []string
		err := f.Logs(ctx, "c", tt.opts, func(l LogLine) error {
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

func TestReadLogSinceByModTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	if err := os.WriteFile(path, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	written := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, written, written); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		since time.Time
		want  []string
	}{
		{"file written before since: nothing", written.Add(time.Minute), nil},
		{"file written after since: everything", written.Add(-time.Minute), []string{"a", "b"}},
		{"no since", time.Time{}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		err = readLogSince(t.Context(), f, -1, tt.since, nil, func(l LogLine) error {
			if !l.At.IsZero() {
				t.Errorf("%s: line %q read from the past has time %v, want none", tt.name, l.Line, l.At)
			}
			got = append(got, string(l.Line))
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
