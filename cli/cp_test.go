package cli

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCpArgs(t *testing.T) {
	tests := []struct {
		arg, task, path string
		remote          bool
	}{
		{"shop/web.2:/etc/hosts", "shop/web.2", "/etc/hosts", true},
		{"3f9a2c:/var/log", "3f9a2c", "/var/log", true},
		{"./local:file", "", "./local:file", false},
		{"/abs/path", "", "/abs/path", false},
		{"-", "", "-", false},
		{"plain", "", "plain", false},
	}
	for _, tt := range tests {
		task, path, remote := splitCopyArg(tt.arg)
		if task != tt.task || path != tt.path || remote != tt.remote {
			t.Errorf("splitCopyArg(%q) = %q, %q, %v; want %q, %q, %v", tt.arg, task, path, remote, tt.task, tt.path, tt.remote)
		}
	}
	cfg := serve(t, &fakeCluster{nodes: testNodes()})
	for _, args := range [][]string{
		{"cp", "a/b:/x", "c/d:/y"},
		{"cp", "./x", "./y"},
		{"cp", "shop/web:etc/hosts", "."},
		{"cp", "shop/web:/x"},
	} {
		if r := run(t, cfg, nil, args...); r.code != exitUsage {
			t.Errorf("berth %s: exit %d (%s), want %d", strings.Join(args, " "), r.code, r.stderr, exitUsage)
		}
	}
}

func TestLocalTarRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "site")
	at := time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.MkdirAll(filepath.Join(src, "css"), 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "index.html"), []byte("<h1>hi</h1>"), 0o644)
	os.WriteFile(filepath.Join(src, "css", "a.css"), []byte("a{}"), 0o600)
	os.Symlink("index.html", filepath.Join(src, "home.html"))
	os.Chtimes(filepath.Join(src, "css", "a.css"), at, at)
	var buf bytes.Buffer
	if err := tarLocal(src, &buf); err != nil {
		t.Fatalf("tarLocal: %v", err)
	}
	dst := t.TempDir()
	// Into an existing directory, and to a new name.
	if err := untarLocal(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatalf("untarLocal into a directory: %v", err)
	}
	if err := untarLocal(bytes.NewReader(buf.Bytes()), filepath.Join(dst, "copy")); err != nil {
		t.Fatalf("untarLocal to a new name: %v", err)
	}
	for _, base := range []string{"site", "copy"} {
		if b, err := os.ReadFile(filepath.Join(dst, base, "index.html")); err != nil || string(b) != "<h1>hi</h1>" {
			t.Errorf("%s/index.html: %q, %v", base, b, err)
		}
		info, err := os.Stat(filepath.Join(dst, base, "css", "a.css"))
		if err != nil || info.Mode().Perm() != 0o600 || !info.ModTime().Equal(at) {
			t.Errorf("%s/css/a.css: %v; want mode 0600 and mtime %v", base, err, at)
		}
		if info, err := os.Stat(filepath.Join(dst, base, "css")); err != nil || info.Mode().Perm() != 0o750 {
			t.Errorf("%s/css: %v, want mode 0750", base, err)
		}
		if l, _ := os.Readlink(filepath.Join(dst, base, "home.html")); l != "index.html" {
			t.Errorf("%s/home.html links to %q", base, l)
		}
	}
}

// An archive from a container is not trusted: nothing it holds lands
// outside the destination.
func TestUntarLocalStaysInTheDestination(t *testing.T) {
	outside := t.TempDir()
	archive := func(hdrs ...*tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hdrs {
			tw.WriteHeader(h)
			tw.Write(bytes.Repeat([]byte("z"), int(h.Size)))
		}
		tw.Close()
		return b.Bytes()
	}
	tests := map[string][]byte{
		"dot-dot": archive(&tar.Header{Name: "d/../../x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
		"through a symlink": archive(
			&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "d/out", Typeflag: tar.TypeSymlink, Linkname: outside},
			&tar.Header{Name: "d/out/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}),
		"device": archive(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666}),
	}
	for name, a := range tests {
		dst := t.TempDir()
		if err := untarLocal(bytes.NewReader(a), dst); err == nil {
			t.Errorf("%s: untarLocal succeeded", name)
		}
		if _, err := os.Lstat(filepath.Join(outside, "x")); err == nil {
			t.Fatalf("%s: a file was written outside the destination", name)
		}
	}
}

func TestUntarLocalDotArchive(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "./a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("a"))
	tw.Close()
	dst := filepath.Join(t.TempDir(), "new")
	if err := untarLocal(bytes.NewReader(b.Bytes()), dst); err != nil {
		t.Fatalf("untarLocal: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "a")); err != nil || string(got) != "a" {
		t.Errorf("new/a: %q, %v", got, err)
	}
}
