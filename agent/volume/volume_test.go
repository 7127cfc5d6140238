package volume

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := New(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, dir
}

func TestStoreEnsureKeepsData(t *testing.T) {
	s, dir := newStore(t)
	ref := Ref{"team", "db-data.1"}
	path, created, err := s.Ensure(ref, nil)
	if err != nil || !created {
		t.Fatalf("Ensure = %q, %v, %v; want created", path, created, err)
	}
	if want := filepath.Join(dir, "volumes", "team", "db-data.1", "_data"); path != want {
		t.Errorf("path = %q, want %q", path, want)
	}
	if err := os.WriteFile(filepath.Join(path, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, created, err := s.Ensure(ref, func(string) error { t.Error("fill called for an existing volume"); return nil })
	if err != nil || created || again != path {
		t.Fatalf("second Ensure = %q, %v, %v; want %q not created", again, created, err, path)
	}
	size, exists, err := s.Size(ref)
	if err != nil || !exists || size != 5 {
		t.Errorf("Size = %d, %v, %v; want 5 bytes", size, exists, err)
	}
	if _, exists, err := s.Size(Ref{"team", "other"}); err != nil || exists {
		t.Errorf("Size of a missing volume: exists %v, err %v; want not exists", exists, err)
	}
	refs, err := s.List()
	if err != nil || !slices.Equal(refs, []Ref{ref}) {
		t.Errorf("List = %v, %v; want [%v]", refs, err, ref)
	}
}

func TestStoreFailedFillLeavesNoVolume(t *testing.T) {
	s, _ := newStore(t)
	ref := Ref{"team", "v"}
	boom := errors.New("boom")
	if _, _, err := s.Ensure(ref, func(dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "half"), nil, 0o644); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Ensure with a failing fill = %v, want %v", err, boom)
	}
	if refs, _ := s.List(); len(refs) != 0 {
		t.Errorf("List after a failed fill = %v, want none", refs)
	}
	path, created, err := s.Ensure(ref, nil)
	if err != nil || !created {
		t.Fatalf("Ensure after a failed fill = %v, %v; want created", created, err)
	}
	if entries, _ := os.ReadDir(path); len(entries) != 0 {
		t.Errorf("new volume holds %v, want nothing", entries)
	}
}

func TestStoreRemove(t *testing.T) {
	s, dir := newStore(t)
	ref := Ref{"team", "v"}
	if _, _, err := s.Ensure(ref, nil); err != nil {
		t.Fatal(err)
	}
	s.Acquire("c1", ref)
	s.Acquire("c2", ref, Ref{"team", "w"})
	s.Release("c1")
	err := s.Remove(ref)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "c2") {
		t.Fatalf("Remove of a used volume = %v, want ErrInUse naming c2", err)
	}
	s.Release("c2")
	s.Release("c2")
	if err := s.Remove(ref); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "volumes", "team")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace dir after removing its last volume: %v, want gone", err)
	}
	if err := s.Remove(ref); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
}

func TestStoreRefusesBadNames(t *testing.T) {
	s, _ := newStore(t)
	for _, ref := range []Ref{{"team", "../x"}, {"team", ".hidden"}, {"..", "v"}, {"", "v"}, {"team", "a/b"}, {"team", ""}} {
		if _, _, err := s.Ensure(ref, nil); err == nil {
			t.Errorf("Ensure(%v) succeeded, want an error", ref)
		}
		if err := s.Remove(ref); err == nil {
			t.Errorf("Remove(%v) succeeded, want an error", ref)
		}
	}
}

func TestNewCollectsLeftovers(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"volumes/team/.new-v-123/_data", "volumes/team/.removed-w-9/volume/_data", "volumes/team/kept/_data"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "volumes", "team"))
	if len(entries) != 1 || entries[0].Name() != "kept" {
		t.Errorf("namespace dir holds %v, want only kept", entries)
	}
	if refs, _ := s.List(); !slices.Equal(refs, []Ref{{"team", "kept"}}) {
		t.Errorf("List = %v", refs)
	}
}

func TestScratch(t *testing.T) {
	s, dir := newStore(t)
	path, err := s.Scratch("task1", 0, func(d string) error { return os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644) })
	if err != nil {
		t.Fatalf("Scratch: %v", err)
	}
	if !strings.HasPrefix(path, filepath.Join(dir, "containers", "task1")) {
		t.Errorf("scratch path %q is not under the container's dir", path)
	}
	if _, err := os.Stat(filepath.Join(path, "f")); err != nil {
		t.Errorf("scratch volume not filled: %v", err)
	}
	if again, err := s.Scratch("task1", 0, nil); err != nil || again != path {
		t.Errorf("second Scratch = %q, %v; want %q", again, err, path)
	}
	if ids, err := s.ScratchContainers(); err != nil || !slices.Equal(ids, []string{"task1"}) {
		t.Errorf("ScratchContainers = %v, %v", ids, err)
	}
	if err := s.RemoveScratch("task1"); err != nil {
		t.Fatalf("RemoveScratch: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch volume after RemoveScratch: %v", err)
	}
	if _, err := s.Scratch("../x", 0, nil); err == nil {
		t.Errorf("Scratch with id ../x succeeded")
	}
}

func TestLabelRoundTrip(t *testing.T) {
	refs := []Ref{{"team", "db.1"}, {"default", "cache_data.n1"}}
	got, err := ParseLabel(FormatLabel(refs))
	if err != nil || !slices.Equal(got, refs) {
		t.Errorf("ParseLabel(FormatLabel) = %v, %v; want %v", got, err, refs)
	}
	if got, err := ParseLabel(""); err != nil || got != nil {
		t.Errorf(`ParseLabel("") = %v, %v`, got, err)
	}
	for _, bad := range []string{"nons", "team/../x", "team/a,"} {
		if _, err := ParseLabel(bad); err == nil {
			t.Errorf("ParseLabel(%q) succeeded", bad)
		}
	}
}
