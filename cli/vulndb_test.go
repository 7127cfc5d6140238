package cli

import (
	"archive/zip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadOSVEntries(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"a/DSA-1.json":      "{}",
		"b/GHSA-2.json":     "{}",
		"README.md":         "not a record",
		".git/objects.json": "{}",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(src string) ([]string, error) {
		var names []string
		err := readOSVEntries(src, func(name string, data []byte) error {
			names = append(names, name)
			return nil
		})
		return names, err
	}
	got, err := collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/DSA-1.json", "b/GHSA-2.json"}; !slices.Equal(got, want) {
		t.Errorf("folder entries = %v, want %v (no README, nothing under .git)", got, want)
	}

	zipPath := filepath.Join(t.TempDir(), "Debian.zip")
	f, err := os.Create(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, n := range []string{"DSA-1.json", "DSA-2.json"} {
		w, _ := zw.Create(n)
		w.Write([]byte("{}"))
	}
	zw.Close()
	f.Close()
	if got, err = collect(zipPath); err != nil || !slices.Equal(got, []string{"DSA-1.json", "DSA-2.json"}) {
		t.Errorf("zip entries = %v, %v", got, err)
	}

	if _, err := collect(filepath.Join(dir, "README.md")); err == nil || !strings.Contains(err.Error(), "README.md is not a zip") {
		t.Errorf("a text file: %v, want it named as not a zip", err)
	}
	if _, err := collect(filepath.Join(dir, "missing.zip")); err == nil {
		t.Error("a missing file was read")
	}
}
