package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/snapshotfile"
	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// etcd's embedded member and client leave these behind for a while.
		goleak.IgnoreTopFunction("go.etcd.io/etcd/pkg/v3/schedule.(*fifo).run"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

func newMaker(t *testing.T) (*Maker, *store.Store, []byte) {
	t.Helper()
	st := storetest.New(t)
	raw, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	kek, err := seal.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Config{Store: st, ClusterID: func() string { return "cluster-1" }, Address: func() string { return "10.0.0.1:4242" }, KEK: kek, TempDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)})
	return m, st, raw
}

// TestSaveAndRestore takes a snapshot of a real etcd, restores it with
// etcd's restore into a new member's directory, and reads the keys back
// from that member.
func TestSaveAndRestore(t *testing.T) {
	m, st, raw := newMaker(t)
	ctx := t.Context()
	for _, kv := range [][2]string{{"/berth/services/default/shop/web", "spec"}, {"/berth/tasks/default/shop/web/t1", "task"}} {
		if _, err := st.Client().Put(ctx, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	h, err := m.Save(ctx, &file, Options{Passphrase: []byte("s3cret passphrase")})
	if err != nil {
		t.Fatal(err)
	}
	if h.EtcdRevision != rev || h.ClusterID != "cluster-1" || h.ServerAddress != "10.0.0.1:4242" || h.Key == nil {
		t.Errorf("header: revision %d (want %d), cluster %q, server %q, key %v", h.EtcdRevision, rev, h.ClusterID, h.ServerAddress, h.Key != nil)
	}
	if bytes.Contains(file.Bytes(), raw) {
		t.Fatal("the key-encryption key is in the snapshot file in plain text")
	}

	r, err := snapshotfile.NewReader(&file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Header.OpenKey([]byte("s3cret passphrase"))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("the key in the snapshot: %v; equal to the cluster's: %v", err, bytes.Equal(got, raw))
	}
	db := filepath.Join(t.TempDir(), "etcd.db")
	out, err := os.Create(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CopyEtcd(out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	member := filepath.Join(t.TempDir(), "etcd")
	if err := etcd.RestoreEmbedded(db, member); err != nil {
		t.Fatal(err)
	}
	e, err := etcd.StartEmbedded(etcd.EmbeddedConfig{DataDir: member})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli := e.Client()
	defer cli.Close()
	resp, err := cli.Get(ctx, "/berth/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 2 || string(resp.Kvs[0].Value) != "spec" || string(resp.Kvs[1].Value) != "task" {
		t.Errorf("the restored member holds %v", resp.Kvs)
	}
	if resp.Header.Revision != rev {
		t.Errorf("the restored member is at revision %d, want %d", resp.Header.Revision, rev)
	}
	// Restoring over a member's data is refused.
	if err := etcd.RestoreEmbedded(db, member); err == nil {
		t.Error("a restore into a non-empty directory was accepted")
	}
}

func TestSaveOptions(t *testing.T) {
	m, _, _ := newMaker(t)
	if _, err := m.Save(t.Context(), new(bytes.Buffer), Options{}); !errors.Is(err, ErrNeedPassphrase) {
		t.Errorf("Save with the key and no passphrase: %v, want ErrNeedPassphrase", err)
	}
	var file bytes.Buffer
	h, err := m.Save(t.Context(), &file, Options{WithoutKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if h.Key != nil {
		t.Error("a snapshot saved without its key carries one")
	}
	r, err := snapshotfile.NewReader(&file)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CopyEtcd(new(bytes.Buffer)); err != nil {
		t.Error(err)
	}
}

// TestPeriodic runs the periodic snapshots until more were written than
// are kept, and checks that only the newest stay, without the key.
func TestPeriodic(t *testing.T) {
	m, _, _ := newMaker(t)
	dir := filepath.Join(t.TempDir(), DirName)
	p := NewPeriodic(m, Schedule{Interval: time.Millisecond, Keep: 2, Dir: dir}, slog.New(slog.DiscardHandler))
	taken := make(chan string, 16)
	p.taken = func(path string) {
		select {
		case taken <- path:
		default:
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var paths []string
	deadline := time.After(time.Minute)
	for len(paths) < 4 {
		select {
		case path := <-taken:
			paths = append(paths, path)
		case <-deadline:
			t.Fatalf("only %d periodic snapshots in a minute", len(paths))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	names, err := p.files()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 {
		t.Fatalf("%d snapshots kept, want 2: %v", len(names), names)
	}
	if filepath.Join(dir, names[1]) != paths[len(paths)-1] {
		t.Errorf("the newest snapshot %s was not kept (kept %v)", paths[len(paths)-1], names)
	}
	f, err := os.Open(filepath.Join(dir, names[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := snapshotfile.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Key != nil {
		t.Error("a periodic snapshot without a passphrase carries the key")
	}
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 {
		t.Errorf("a periodic snapshot's mode is %v, want 0600", st.Mode().Perm())
	}
	if got := testutil.ToFloat64(p.lastSize); got <= 0 {
		t.Errorf("berth_snapshot_last_size_bytes = %v", got)
	}
	if got := testutil.ToFloat64(p.lastSuccess); got <= 0 {
		t.Errorf("berth_snapshot_last_success_timestamp_seconds = %v", got)
	}
	if got := testutil.ToFloat64(p.failures); got != 0 {
		t.Errorf("berth_snapshot_failures_total = %v, want 0", got)
	}
}

// TestPeriodicFailure: a snapshot that cannot be written is counted and
// logged, and Run goes on.
func TestPeriodicFailure(t *testing.T) {
	m, _, _ := newMaker(t)
	// A file where the folder should be.
	dir := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Written by Run's goroutine, read once it has ended.
	var logged bytes.Buffer
	p := NewPeriodic(m, Schedule{Interval: time.Millisecond, Dir: dir}, slog.New(slog.NewTextHandler(&logged, nil)))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for testutil.ToFloat64(p.failures) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("failures counted: %v, want 3 or more", testutil.ToFloat64(p.failures))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run ended with %v; failures must not stop it", err)
	}
	if !strings.Contains(logged.String(), "periodic snapshot failed") {
		t.Errorf("the failure was not logged: %s", logged.String())
	}
}

// TestPeriodicOff: without an interval Run writes nothing and returns
// only when told, as a part of the leader's term must.
func TestPeriodicOff(t *testing.T) {
	m, _, _ := newMaker(t)
	dir := filepath.Join(t.TempDir(), DirName)
	p := NewPeriodic(m, Schedule{Dir: dir}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run without an interval returned before it was stopped: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Run without an interval made %s: %v", dir, err)
	}
}

// BenchmarkSave takes snapshots of an etcd holding 10,000 task-sized
// records (about 1 KiB each) and reports the sizes: go test -bench Save
// -run '^$' ./controlplane/snapshot/
func BenchmarkSave(b *testing.B) {
	st := storetest.New(b)
	raw, _ := seal.Generate()
	kek, _ := seal.New(raw)
	m := New(Config{Store: st, ClusterID: func() string { return "bench" }, KEK: kek, TempDir: b.TempDir(), Log: slog.New(slog.DiscardHandler)})
	for i := range 10000 {
		// Half text, half random: protobuf records compress about so.
		noise := make([]byte, 256)
		rand.Read(noise)
		value := strings.Repeat("task spec ", 50) + hex.EncodeToString(noise)
		if _, err := st.Client().Put(b.Context(), fmt.Sprintf("/berth/tasks/default/app/svc/t%05d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	var size, etcdSize int64
	for b.Loop() {
		var out countingWriter
		h, err := m.Save(b.Context(), &out, Options{WithoutKey: true})
		if err != nil {
			b.Fatal(err)
		}
		size, etcdSize = out.n, h.EtcdSize
	}
	b.ReportMetric(float64(etcdSize), "etcd-bytes")
	b.ReportMetric(float64(size), "file-bytes")
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func TestRemoveLeftovers(t *testing.T) {
	tmp, dir := t.TempDir(), t.TempDir()
	keep := []string{filepath.Join(dir, "berth-20261207T150405.000Z.snapshot"), filepath.Join(tmp, "etcd"), filepath.Join(dir, "notes.txt")}
	gone := []string{filepath.Join(tmp, ".etcd-snapshot-123.db"), filepath.Join(dir, ".berth-20261207T150405.000Z.snapshot.tmp-456")}
	for _, f := range append(keep, gone...) {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	RemoveLeftovers(tmp, dir)
	for _, f := range keep {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s was removed: %v", f, err)
		}
	}
	for _, f := range gone {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is left: %v", f, err)
		}
	}
}
