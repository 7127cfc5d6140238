package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/snapshotfile"
)

// snapshotCluster answers SaveSnapshot with a snapshot file of etcd, its
// key sealed with the request's passphrase; damage, when set, alters the
// file before it is sent.
type snapshotCluster struct {
	fakeCluster
	etcd   []byte
	kek    []byte
	damage func([]byte) []byte
}

func (f *snapshotCluster) SaveSnapshot(req *berthv1.SaveSnapshotRequest, stream berthv1.ClusterService_SaveSnapshotServer) error {
	sum := sha256.Sum256(f.etcd)
	h := snapshotfile.Header{BerthVersion: "v9.9.9", ClusterID: "c-123", EtcdRevision: 77, Created: time.Now(),
		EtcdSHA256: hex.EncodeToString(sum[:]), EtcdSize: int64(len(f.etcd))}
	if !req.WithoutKey {
		var err error
		if h.Key, err = snapshotfile.SealKey(f.kek, req.Passphrase, h); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := snapshotfile.Write(&buf, h, bytes.NewReader(f.etcd)); err != nil {
		return err
	}
	b := buf.Bytes()
	if f.damage != nil {
		b = f.damage(b)
	}
	for len(b) > 0 {
		n := min(len(b), 1000)
		if err := stream.Send(&berthv1.SnapshotChunk{Data: b[:n]}); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func TestSnapshotSaveInspectExtract(t *testing.T) {
	t.Setenv(EnvSnapshotPassphrase, "")
	f := &snapshotCluster{etcd: bytes.Repeat([]byte("etcd page "), 5000), kek: bytes.Repeat([]byte{9}, 32)}
	cfg := serve(t, f)
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("hunter2 but longer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.snapshot")
	r := mustRun(t, cfg, "snapshot", "save", file, "--passphrase-file", pass)
	if !strings.Contains(r.stdout, "cluster c-123 (etcd revision 77)") || !strings.Contains(r.stdout, "sealed with your passphrase") {
		t.Errorf("save said:\n%s", r.stdout)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the snapshot file: %v, mode %v", err, st.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	if bytes.Contains(b, f.kek) {
		t.Fatal("the key-encryption key is in the file in plain text")
	}
	// Only the file: no temporary file is left beside it.
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("the directory holds %d entries, want the passphrase and the snapshot", len(entries))
	}

	r = mustRun(t, cfg, "snapshot", "inspect", file)
	for _, want := range []string{"c-123", "etcd revision:   77", "v9.9.9", "sealed with a passphrase (scrypt, aes-256-gcm)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect does not show %q:\n%s", want, r.stdout)
		}
	}
	r = mustRun(t, cfg, "snapshot", "inspect", file, "-o", "json")
	if !strings.Contains(r.stdout, `"etcd_revision": 77`) {
		t.Errorf("inspect -o json:\n%s", r.stdout)
	}

	db := filepath.Join(dir, "etcd.db")
	mustRun(t, cfg, "snapshot", "extract-etcd", file, db)
	if got, _ := os.ReadFile(db); !bytes.Equal(got, f.etcd) {
		t.Error("extract-etcd wrote another etcd snapshot than the one saved")
	}

	// Saved again over it: refused unless --force.
	if r := run(t, cfg, nil, "snapshot", "save", file, "--without-key"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("save over an existing file: exit %d, %s", r.code, r.stderr)
	}
	r = mustRun(t, cfg, "snapshot", "save", file, "--without-key", "--force")
	if !strings.Contains(r.stdout, "does not carry the key-encryption key") {
		t.Errorf("save --without-key said:\n%s", r.stdout)
	}
}

func TestSnapshotSaveRefused(t *testing.T) {
	t.Setenv(EnvSnapshotPassphrase, "")
	f := &snapshotCluster{etcd: bytes.Repeat([]byte("etcd page "), 5000), kek: bytes.Repeat([]byte{9}, 32)}
	cfg := serve(t, f)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	file := filepath.Join(dir, "c.snapshot")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no passphrase and no terminal", []string{"snapshot", "save", file}, 2, "BERTH_SNAPSHOT_PASSPHRASE"},
		{"an empty passphrase file", []string{"snapshot", "save", file, "--passphrase-file", empty}, 1, "is empty"},
		{"a passphrase with --without-key", []string{"snapshot", "save", file, "--passphrase-file", empty, "--without-key"}, 2, "one or the other"},
		{"no file name", []string{"snapshot", "save"}, 2, "arg"},
		{"inspect of a file that is not one", []string{"snapshot", "inspect", empty}, 1, "not a Berth snapshot file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, cfg, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}

	// A file damaged on the way is not kept.
	f.damage = func(b []byte) []byte { b[len(b)-10] ^= 0xff; return b }
	r := run(t, cfg, nil, "snapshot", "save", file, "--without-key")
	if r.code != 1 || !strings.Contains(r.stderr, "does not match its checksum") {
		t.Errorf("save of a damaged stream: exit %d, %s", r.code, r.stderr)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("a damaged snapshot was kept: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a failed save left %d entries in the directory, want only the passphrase file", len(entries))
	}
	// So is one cut short.
	f.damage = func(b []byte) []byte { return b[:len(b)/2] }
	if r := run(t, cfg, nil, "snapshot", "save", file, "--without-key"); r.code != 1 {
		t.Errorf("save of a stream cut short: exit %d, %s", r.code, r.stderr)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("a snapshot cut short was kept: %v", err)
	}
}
