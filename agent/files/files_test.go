package files

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"golang.org/x/sys/unix"
)

func task(id string, secrets, configs []*berthv1.FileReference) *berthv1.Task {
	return &berthv1.Task{Meta: &berthv1.Meta{Id: id}, Namespace: "team", Spec: &berthv1.ServiceSpec{Secrets: secrets, Configs: configs}}
}

func payload(secret bool, name string, version uint64, data string) *berthv1.FilePayload {
	return &berthv1.FilePayload{Secret: secret, Namespace: "team", Name: name, Version: version, Data: []byte(data)}
}

func TestPayloadsFiles(t *testing.T) {
	p := NewPayloads()
	tk := task("t1",
		[]*berthv1.FileReference{{Name: "app_db_password", Target: "db_password", Version: 2}, {Name: "tls", Target: "/etc/tls/key.pem", Uid: 70, Gid: 71, Mode: 0o400, Version: 1}},
		[]*berthv1.FileReference{{Name: "app_nginx", Target: "/etc/nginx/nginx.conf", Version: 1}, {Name: "plain", Version: 3}},
	)
	p.Apply(&berthv1.Assignments{
		Full:  true,
		Tasks: []*berthv1.Task{tk},
		Files: []*berthv1.FilePayload{payload(true, "app_db_password", 2, "s3cret"), payload(true, "tls", 1, "KEY"), payload(false, "app_nginx", 1, "conf"), payload(false, "plain", 3, "p")},
	})
	got, err := p.Files(tk)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	want := []File{
		{Target: "/run/secrets/db_password", Data: []byte("s3cret"), Mode: 0o444, Secret: true, Name: "app_db_password"},
		{Target: "/etc/tls/key.pem", Data: []byte("KEY"), UID: 70, GID: 71, Mode: 0o400, Secret: true, Name: "tls"},
		{Target: "/etc/nginx/nginx.conf", Data: []byte("conf"), Mode: 0o444, Name: "app_nginx"},
		{Target: "/plain", Data: []byte("p"), Mode: 0o444, Name: "plain"},
	}
	if len(got) != len(want) {
		t.Fatalf("Files = %d files, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Target != w.Target || !bytes.Equal(g.Data, w.Data) || g.UID != w.UID || g.GID != w.GID || g.Mode != w.Mode || g.Secret != w.Secret || g.Name != w.Name {
			t.Errorf("file %d = %v, want %v", i, g, w)
		}
	}
}

func TestPayloadsMissingVersion(t *testing.T) {
	p := NewPayloads()
	tests := []struct {
		name string
		task *berthv1.Task
		want string
	}{
		{"secret", task("t1", []*berthv1.FileReference{{Name: "pw", Version: 4}}, nil), "secret pw version 4 was not delivered to this node"},
		{"config", task("t2", nil, []*berthv1.FileReference{{Name: "conf", Version: 1}}), "config conf version 1 was not delivered to this node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.Apply(&berthv1.Assignments{Tasks: []*berthv1.Task{tc.task}, Files: []*berthv1.FilePayload{payload(tc.name == "secret", "other", 1, "x")}})
			_, err := p.Files(tc.task)
			if !errors.Is(err, ErrNotDelivered) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Files = %v, want %q wrapping ErrNotDelivered", err, tc.want)
			}
		})
	}
}

func TestPayloadsDropUnusedVersions(t *testing.T) {
	p := NewPayloads()
	ref := func(v uint64) []*berthv1.FileReference { return []*berthv1.FileReference{{Name: "pw", Version: v}} }
	t1, t2 := task("t1", ref(1), nil), task("t2", ref(1), nil)
	p.Apply(&berthv1.Assignments{Full: true, Tasks: []*berthv1.Task{t1, t2}, Files: []*berthv1.FilePayload{payload(true, "pw", 1, "one")}})
	// A new version for a new task; the old one is still used by t2.
	t3 := task("t3", ref(2), nil)
	p.Apply(&berthv1.Assignments{Tasks: []*berthv1.Task{t3}, Removed: []string{"t1"}, Files: []*berthv1.FilePayload{payload(true, "pw", 2, "two")}})
	if n := p.Len(); n != 2 {
		t.Errorf("after rollout start: %d versions, want 2", n)
	}
	if _, err := p.Files(t2); err != nil {
		t.Errorf("t2 lost its version: %v", err)
	}
	p.Apply(&berthv1.Assignments{Removed: []string{"t2"}})
	if n := p.Len(); n != 1 {
		t.Errorf("after t2 left: %d versions, want 1", n)
	}
	if _, err := p.Files(t2); !errors.Is(err, ErrNotDelivered) {
		t.Errorf("version 1 kept after its last task left: %v", err)
	}
	// A full set replaces the tasks: t3 is gone, so is its version.
	p.Apply(&berthv1.Assignments{Full: true})
	if n := p.Len(); n != 0 {
		t.Errorf("after an empty full set: %d versions, want 0", n)
	}
}

func TestFileNeverPrintsData(t *testing.T) {
	f := File{Target: "/run/secrets/pw", Data: []byte("hunter2"), Secret: true, Name: "pw", Mode: 0o400}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("file", "f", f)
	for _, s := range []string{fmt.Sprint(f), fmt.Sprintf("%+v", f), fmt.Sprintf("%#v", f), fmt.Sprintf("%v", []File{f}), logged.String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("printed data: %s", s)
		}
	}
}

func TestTarget(t *testing.T) {
	tests := []struct {
		secret       bool
		name, target string
		want         string
	}{
		{true, "pw", "", "/run/secrets/pw"},
		{true, "app_pw", "pw", "/run/secrets/pw"},
		{true, "pw", "/etc/pw", "/etc/pw"},
		{false, "conf", "", "/conf"},
		{false, "conf", "/etc/app.conf", "/etc/app.conf"},
		{false, "conf", "app.conf", "/app.conf"},
		{true, "pw", "/etc/../pw", "/pw"},
	}
	for _, tc := range tests {
		if got := Target(tc.secret, tc.name, tc.target); got != tc.want {
			t.Errorf("Target(%v, %q, %q) = %q, want %q", tc.secret, tc.name, tc.target, got, tc.want)
		}
	}
}

func TestDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	root := t.TempDir()
	d, err := NewDirs(root, "node-1")
	if err != nil {
		t.Fatalf("NewDirs: %v", err)
	}
	t.Cleanup(func() { _ = d.Remove("c1") })
	files := []File{
		{Target: "/run/secrets/pw", Data: []byte("hunter2"), UID: 999, GID: 998, Mode: 0o400, Secret: true, Name: "pw"},
		{Target: "/etc/app.conf", Data: []byte("conf"), Mode: 0o444, Name: "conf"},
	}
	paths, err := d.Write("c1", files)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if len(paths) != 2 {
		t.Fatalf("Write = %v, want 2 paths", paths)
	}
	var fsst unix.Statfs_t
	if err := unix.Statfs(paths[0], &fsst); err != nil || fsst.Type != unix.TMPFS_MAGIC {
		t.Errorf("files are not on a tmpfs (type %x, %v)", fsst.Type, err)
	}
	if fsst.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("tmpfs is writable")
	}
	for i, f := range files {
		var st unix.Stat_t
		if err := unix.Stat(paths[i], &st); err != nil {
			t.Fatal(err)
		}
		if os.FileMode(st.Mode).Perm() != f.Mode || st.Uid != f.UID || st.Gid != f.GID {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", f.Name, st.Mode&0o777, st.Uid, st.Gid, f.Mode, f.UID, f.GID)
		}
		if b, _ := os.ReadFile(paths[i]); !bytes.Equal(b, f.Data) {
			t.Errorf("%s holds %d bytes, want %d", f.Name, len(b), len(f.Data))
		}
	}
	if fi, err := os.Stat(d.Dir("c1")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("container dir: %v, %v; want mode 0700", fi, err)
	}
	if !strings.HasPrefix(d.Dir("c1"), root) || strings.Contains(d.Dir("c1"), "node-1") {
		t.Errorf("container dir %s: want it under %s, named by the owner's hash", d.Dir("c1"), root)
	}

	// Writing again replaces the tmpfs, not stacks one more.
	if _, err := d.Write("c1", files[:1]); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	if entries, _ := os.ReadDir(d.Dir("c1")); len(entries) != 1 {
		t.Errorf("after rewrite: %d files, want 1", len(entries))
	}
	if ids, err := d.List(); err != nil || len(ids) != 1 || ids[0] != "c1" {
		t.Errorf("List = %v, %v", ids, err)
	}
	for range 2 {
		if err := d.Remove("c1"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	if _, err := os.Stat(d.Dir("c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir after Remove: %v", err)
	}
	if mounted(t, filepath.Join(root)) {
		t.Errorf("a tmpfs is still mounted under %s", root)
	}
}

// mounted reports whether a mount point lies under dir.
func mounted(t *testing.T, dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			return true
		}
	}
	return false
}
