package containerd

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

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
		err = readLogSince(t.Context(), f, -1, tt.since, nil, func(l runtime.LogLine) error {
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

func TestReadLogStampsFollowedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	if err := os.WriteFile(path, []byte("before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exited := make(chan runtime.Exit, 1)
	lines := make(chan runtime.LogLine, 4)
	done := make(chan error, 1)
	go func() {
		done <- readLogSince(t.Context(), f, -1, time.Time{}, exited, func(l runtime.LogLine) error {
			lines <- l
			return nil
		})
	}()
	if l := <-lines; string(l.Line) != "before" || !l.At.IsZero() {
		t.Fatalf("first line %q at %v, want %q with no time: it was there before", l.Line, l.At, "before")
	}
	appended := time.Now()
	w, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if l := <-lines; string(l.Line) != "after" || l.At.Before(appended) {
		t.Fatalf("followed line %q at %v, want %q read after %v", l.Line, l.At, "after", appended)
	}
	exited <- runtime.Exit{}
	if err := <-done; err != nil {
		t.Fatalf("readLogSince: %v", err)
	}
}
