package volume

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// makeImage writes a small root file system: /data (owned by 999:998,
// mode 0750) with files, a link, a hard link, a FIFO and a subdirectory;
// /var/run a link to /run, which holds app/.
func makeImage(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(root, "data")
	must(os.MkdirAll(filepath.Join(data, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(data, "conf"), []byte("key=value\n"), 0o640))
	must(os.Chown(filepath.Join(data, "conf"), 999, 998))
	must(os.WriteFile(filepath.Join(data, "sub", "tool"), []byte("#!/bin/sh\n"), 0o755))
	must(unix.Chmod(filepath.Join(data, "sub", "tool"), 0o4755))
	must(os.Link(filepath.Join(data, "conf"), filepath.Join(data, "conf.link")))
	must(os.Symlink("/etc/passwd", filepath.Join(data, "passwd")))
	must(os.Lchown(filepath.Join(data, "passwd"), 999, 998))
	must(unix.Mkfifo(filepath.Join(data, "fifo"), 0o600))
	must(os.Chtimes(filepath.Join(data, "conf"), mtime, mtime))
	must(os.Chown(data, 999, 998))
	must(os.Chmod(data, 0o750))
	must(os.MkdirAll(filepath.Join(root, "run", "app"), 0o755))
	must(os.WriteFile(filepath.Join(root, "run", "app", "pid"), []byte("1"), 0o644))
	must(os.MkdirAll(filepath.Join(root, "var"), 0o755))
	must(os.Symlink("/run", filepath.Join(root, "var", "run")))
	// A link out of the image: following it must not copy the host's /etc.
	must(os.Symlink("/../../../../etc", filepath.Join(root, "escape")))
	return root
}

func TestCopyUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to keep owners")
	}
	rootfs := makeImage(t)
	dst := t.TempDir()
	if err := CopyUp(dst, rootfs, "/data"); err != nil {
		t.Fatalf("CopyUp: %v", err)
	}
	check := func(rel string, mode os.FileMode, uid, gid uint32) *unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dst, rel), &st); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if got := os.FileMode(st.Mode & 0o7777); got != mode&0o7777 {
			t.Errorf("%s: mode %o, want %o", rel, got, mode&0o7777)
		}
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, uid, gid)
		}
		return &st
	}
	check(".", 0o750, 999, 998)
	conf := check("conf", 0o640, 999, 998)
	check("sub", 0o755, 0, 0)
	check("sub/tool", 0o4755, 0, 0)
	if link := check("conf.link", 0o640, 999, 998); conf != nil && link != nil && conf.Ino != link.Ino {
		t.Errorf("conf.link is not a hard link of conf")
	}
	if conf != nil && time.Unix(conf.Mtim.Unix()).UTC().Year() != 2020 {
		t.Errorf("conf mtime %v, want the image's", time.Unix(conf.Mtim.Unix()))
	}
	if target, err := os.Readlink(filepath.Join(dst, "passwd")); err != nil || target != "/etc/passwd" {
		t.Errorf("passwd link = %q, %v; want /etc/passwd", target, err)
	}
	check("passwd", 0o777, 999, 998)
	if fi, err := os.Lstat(filepath.Join(dst, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v, %v; want a named pipe", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "conf")); string(b) != "key=value\n" {
		t.Errorf("conf holds %q", b)
	}
}

// TestCopyUpKeepsXattrs: extended attributes (file capabilities are one)
// come along, set after the owner, which would clear some of them.
func TestCopyUpKeepsXattrs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for trusted.* attributes")
	}
	rootfs := makeImage(t)
	tool := filepath.Join(rootfs, "data", "sub", "tool")
	if err := unix.Lsetxattr(tool, "trusted.berth-test", []byte("kept"), 0); err != nil {
		t.Skipf("the test's file system keeps no extended attributes: %v", err)
	}
	if err := unix.Lsetxattr(filepath.Join(rootfs, "data", "sub"), "trusted.berth-dir", []byte("dir"), 0); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := CopyUp(dst, rootfs, "/data"); err != nil {
		t.Fatalf("CopyUp: %v", err)
	}
	for _, x := range []struct{ path, name, want string }{
		{"sub/tool", "trusted.berth-test", "kept"},
		{"sub", "trusted.berth-dir", "dir"},
	} {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dst, x.path), x.name, buf)
		if err != nil || string(buf[:n]) != x.want {
			t.Errorf("%s %s = %q, %v; want %q", x.path, x.name, buf[:max(n, 0)], err, x.want)
		}
	}
}

func TestCopyUpResolvesInsideImage(t *testing.T) {
	rootfs := makeImage(t)
	tests := []struct {
		target string
		want   []string
	}{
		{"/var/run", []string{"app"}}, // through the image's own link
		{"/missing", nil},
		{"/run/app/pid", nil}, // a file: nothing to copy
		{"/escape", nil},      // resolves to the image's /etc, which is absent
	}
	for _, tc := range tests {
		dst := t.TempDir()
		if err := CopyUp(dst, rootfs, tc.target); err != nil {
			t.Errorf("CopyUp(%s): %v", tc.target, err)
			continue
		}
		entries, _ := os.ReadDir(dst)
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("CopyUp(%s) copied %v, want %v", tc.target, got, tc.want)
		}
	}
}

func TestEnsureWithCopyUp(t *testing.T) {
	rootfs := makeImage(t)
	s, _ := newStore(t)
	path, created, err := s.Ensure(Ref{"team", "run"}, func(dir string) error { return CopyUp(dir, rootfs, "/run") })
	if err != nil || !created {
		t.Fatalf("Ensure = %v, %v", created, err)
	}
	if b, err := os.ReadFile(filepath.Join(path, "app", "pid")); err != nil || string(b) != "1" {
		t.Errorf("copied pid = %q, %v", b, err)
	}
}

func TestSubpath(t *testing.T) {
	data := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(data, "db", "main"), 0o755))
	must(os.WriteFile(filepath.Join(data, "file"), nil, 0o644))
	must(os.Symlink(outside, filepath.Join(data, "out")))
	must(os.Symlink("../../..", filepath.Join(data, "up")))
	must(os.Symlink("db", filepath.Join(data, "dblink")))

	tests := []struct {
		sub     string
		want    string // relative to data; "" with wantErr
		wantErr string
	}{
		{"", ".", ""},
		{"db/main", "db/main", ""},
		{"./db", "db", ""},
		{"file", "file", ""},
		{"dblink/main", "db/main", ""},
		{"new/dir", "new/dir", ""},
		{"../x", "", "must not contain '..'"},
		{"db/../../x", "", "must not contain '..'"},
		{"/etc", "", "relative"},
		// Links are resolved inside the volume: the one to the outside
		// directory becomes a directory of the volume.
		{"out", strings.TrimPrefix(outside, "/"), ""},
		{"up/etc", "etc", ""},
	}
	for _, tc := range tests {
		got, err := Subpath(data, tc.sub)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Subpath(%q) = %q, %v; want an error with %q", tc.sub, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Subpath(%q): %v", tc.sub, err)
			continue
		}
		if want := filepath.Join(data, tc.want); got != want {
			t.Errorf("Subpath(%q) = %q, want %q", tc.sub, got, want)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the directory outside the volume got %v", entries)
	}
}
