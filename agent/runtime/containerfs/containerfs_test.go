package containerfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, path, content string, mode os.FileMode, at time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

func TestTarAndUntarKeepModesAndTimes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	write(t, filepath.Join(src, "data/a.txt"), "alpha", 0o640, at)
	write(t, filepath.Join(src, "data/sub/run.sh"), "#!/bin/sh\n", 0o755, at)
	if err := os.Symlink("a.txt", filepath.Join(src, "data/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "data"), at, at); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Tar(src, "/data", &buf, MaxCopy); err != nil {
		t.Fatalf("Tar: %v", err)
	}
	// Into an existing directory: the archive's top keeps its name.
	if err := os.Mkdir(filepath.Join(dst, "into"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Untar(dst, "/into", bytes.NewReader(buf.Bytes()), MaxCopy); err != nil {
		t.Fatalf("Untar: %v", err)
	}
	// To a new name: the top takes it.
	if _, err := Untar(dst, "/renamed", bytes.NewReader(buf.Bytes()), MaxCopy); err != nil {
		t.Fatalf("Untar to a new name: %v", err)
	}
	for _, base := range []string{"into/data", "renamed"} {
		check := func(rel string, mode os.FileMode, content string) {
			p := filepath.Join(dst, base, rel)
			info, err := os.Lstat(p)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if info.Mode().Perm() != mode || !info.ModTime().Equal(at) {
				t.Errorf("%s: mode %v, mtime %v; want %v, %v", p, info.Mode().Perm(), info.ModTime(), mode, at)
			}
			if b, _ := os.ReadFile(p); content != "" && string(b) != content {
				t.Errorf("%s holds %q, want %q", p, b, content)
			}
		}
		check("a.txt", 0o640, "alpha")
		check("sub/run.sh", 0o755, "#!/bin/sh\n")
		if info, err := os.Lstat(filepath.Join(dst, base)); err != nil || !info.ModTime().Equal(at) {
			t.Errorf("%s: %v, mtime %v; want %v", base, err, info.ModTime(), at)
		}
		if l, err := os.Readlink(filepath.Join(dst, base, "link")); err != nil || l != "a.txt" {
			t.Errorf("%s/link: %q, %v; want a symlink to a.txt", base, l, err)
		}
	}
}

// A symlink that points out of the root, absolute or with "..", is
// resolved inside it, reading or writing.
func TestSymlinksStayInTheRoot(t *testing.T) {
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret"), "host secret", 0o600, time.Now())
	root := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("../", 20)+strings.TrimPrefix(outside, "/"), filepath.Join(root, "rel")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/abs/secret", "/rel/secret", "../../../../" + outside + "/secret"} {
		var buf bytes.Buffer
		err := Tar(root, p, &buf, MaxCopy)
		if !errors.Is(err, ErrNotFound) || strings.Contains(buf.String(), "host secret") {
			t.Errorf("Tar(%s) = %v, read %d bytes; want ErrNotFound and nothing of the host's file", p, err, buf.Len())
		}
	}
	// Writing through the symlink makes the file inside the root.
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	tw.WriteHeader(&tar.Header{Name: "secret", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	tw.Write([]byte("owned"))
	tw.Close()
	if err := os.MkdirAll(filepath.Join(root, outside), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Untar(root, "/abs", bytes.NewReader(archive.Bytes()), MaxCopy); err != nil {
		t.Fatalf("Untar through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "host secret" {
		t.Errorf("the host's file now holds %q: the copy went out of the root", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, outside, "secret")); string(b) != "owned" {
		t.Errorf("the file inside the root holds %q, want owned", b)
	}
}

func TestRefusals(t *testing.T) {
	root := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "big"), strings.Repeat("x", 100), 0o644, time.Now())
	if err := Tar(root, "/fifo", &bytes.Buffer{}, MaxCopy); err == nil || !strings.Contains(err.Error(), "a FIFO") {
		t.Errorf("Tar of a FIFO: %v, want it refused", err)
	}
	if err := Tar(root, "/", &bytes.Buffer{}, MaxCopy); err == nil || !strings.Contains(err.Error(), "a FIFO") {
		t.Errorf("Tar of a directory holding a FIFO: %v, want it refused", err)
	}
	if err := Tar(root, "/big", &bytes.Buffer{}, 50); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Tar over the limit: %v, want ErrTooLarge", err)
	}
	if err := Tar(root, "/missing", &bytes.Buffer{}, MaxCopy); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tar of a missing path: %v, want ErrNotFound", err)
	}
	archive := func(hdrs ...*tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hdrs {
			tw.WriteHeader(h)
			if h.Size > 0 {
				tw.Write(bytes.Repeat([]byte("y"), int(h.Size)))
			}
		}
		tw.Close()
		return b.Bytes()
	}
	tests := []struct {
		name  string
		tar   []byte
		limit int64
		want  string
	}{
		{"device", archive(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}), MaxCopy, "device file"},
		{"escape", archive(&tar.Header{Name: "../../x", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}), MaxCopy, "leads out"},
		{"too large", archive(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: 100, Mode: 0o644}), 10, "size limit"},
	}
	for _, tt := range tests {
		if _, err := Untar(root, "/", bytes.NewReader(tt.tar), tt.limit); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Untar = %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "null")); err == nil {
		t.Error("a device file was made")
	}
	if _, err := Untar(root, "/no/such/dir/f", bytes.NewReader(archive(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644})), MaxCopy); !errors.Is(err, ErrNotFound) {
		t.Errorf("Untar under a missing directory: %v, want ErrNotFound", err)
	}
}

// An archive of a directory's contents (tar -C dir -c .) goes into an
// existing directory, or becomes a new one.
func TestUntarDotArchive(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("a"))
	tw.WriteHeader(&tar.Header{Name: "./d/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./d/b", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("b"))
	tw.Close()
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "existing"), 0o755)
	for _, dst := range []string{"/existing", "/new"} {
		if _, err := Untar(root, dst, bytes.NewReader(b.Bytes()), MaxCopy); err != nil {
			t.Fatalf("Untar into %s: %v", dst, err)
		}
		for rel, want := range map[string]string{"a": "a", "d/b": "b"} {
			if got, err := os.ReadFile(filepath.Join(root, dst, rel)); err != nil || string(got) != want {
				t.Errorf("%s/%s: %q, %v; want %q", dst, rel, got, err, want)
			}
		}
	}
}
