package snapshotfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func init() {
	// Cheap parameters: the tests check the composition, not the cost.
	scryptParams.N = 1 << 10
}

// fakeEtcd is a stand-in for an etcd snapshot: compressible, like bolt's
// free pages, with some noise.
func fakeEtcd() []byte {
	b := bytes.Repeat([]byte("bolt page "), 20000)
	for i := range 4096 {
		b[i*37%len(b)] = byte(i)
	}
	return b
}

func headerFor(etcd []byte) Header {
	sum := sha256.Sum256(etcd)
	return Header{
		BerthVersion: "v1.2.3", ClusterID: "c0ffee", EtcdRevision: 42, EtcdStorageVersion: "3.6.0",
		Created: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC), EtcdSHA256: hex.EncodeToString(sum[:]), EtcdSize: int64(len(etcd)),
	}
}

func write(t *testing.T, h Header, etcd []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, h, bytes.NewReader(etcd)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	etcd := fakeEtcd()
	h := headerFor(etcd)
	kek := bytes.Repeat([]byte{7}, 32)
	var err error
	if h.Key, err = SealKey(kek, []byte("correct horse"), h); err != nil {
		t.Fatal(err)
	}
	file := write(t, h, etcd)
	if len(file) >= len(etcd) {
		t.Errorf("the file is %d bytes for %d bytes of etcd: not compressed", len(file), len(etcd))
	}
	if bytes.Contains(file, kek) {
		t.Fatal("the key-encryption key is in the file in plain text")
	}
	r, err := NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.ClusterID != "c0ffee" || r.Header.EtcdRevision != 42 || !r.Header.Created.Equal(h.Created) || r.Header.BerthVersion != "v1.2.3" {
		t.Errorf("header read back as %+v", r.Header)
	}
	got, err := r.Header.OpenKey([]byte("correct horse"))
	if err != nil || !bytes.Equal(got, kek) {
		t.Fatalf("OpenKey = %x, %v; want the key", got, err)
	}
	var out bytes.Buffer
	if err := r.CopyEtcd(&out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), etcd) {
		t.Error("the etcd snapshot read back differs from the one written")
	}
}

func TestWrongPassphrase(t *testing.T) {
	etcd := fakeEtcd()
	h := headerFor(etcd)
	var err error
	if h.Key, err = SealKey(make([]byte, 32), []byte("right"), h); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(write(t, h, etcd)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Header.OpenKey([]byte("wrong")); !errors.Is(err, ErrPassphrase) {
		t.Errorf("OpenKey with the wrong passphrase: %v, want ErrPassphrase", err)
	}
	// A key moved into another snapshot's header does not open there.
	other := headerFor(append(etcd, 'x'))
	other.Key = h.Key
	if _, err := other.OpenKey([]byte("right")); !errors.Is(err, ErrPassphrase) {
		t.Errorf("OpenKey of a key moved to another snapshot: %v, want ErrPassphrase", err)
	}
	if _, err := headerFor(etcd).OpenKey([]byte("right")); !errors.Is(err, ErrNoKey) {
		t.Errorf("OpenKey without a key: %v, want ErrNoKey", err)
	}
	if _, err := SealKey(make([]byte, 32), nil, h); !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("SealKey with an empty passphrase: %v, want ErrEmptyPassphrase", err)
	}
}

func TestDamage(t *testing.T) {
	etcd := fakeEtcd()
	h := headerFor(etcd)
	file := write(t, h, etcd)
	headerEnd := len(Magic) + 5 + int(file[len(Magic)+4]) + int(file[len(Magic)+3])<<8
	tests := []struct {
		name   string
		damage func([]byte) []byte
		// atHeader is the error NewReader gives, nil when it reads.
		atHeader error
		atCopy   error
	}{
		{"a byte of the payload flipped", func(b []byte) []byte { b[headerEnd+(len(b)-headerEnd)/2] ^= 0x40; return b }, nil, ErrChecksum},
		{"the payload cut short", func(b []byte) []byte { return b[:headerEnd+(len(b)-headerEnd)/2] }, nil, ErrChecksum},
		{"not a snapshot", func([]byte) []byte { return []byte("SQLite format 3\x00 and more") }, ErrNotSnapshot, nil},
		{"empty", func([]byte) []byte { return nil }, ErrNotSnapshot, nil},
		{"the header cut short", func(b []byte) []byte { return b[:headerEnd-3] }, ErrNotSnapshot, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.damage(bytes.Clone(file))
			r, err := NewReader(bytes.NewReader(b))
			if tt.atHeader != nil {
				if !errors.Is(err, tt.atHeader) {
					t.Fatalf("NewReader: %v, want %v", err, tt.atHeader)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := r.CopyEtcd(new(bytes.Buffer)); !errors.Is(err, tt.atCopy) {
				t.Errorf("CopyEtcd: %v, want %v", err, tt.atCopy)
			}
		})
	}
}

func TestWriteChecksHeader(t *testing.T) {
	etcd := fakeEtcd()
	h := headerFor(etcd)
	h.EtcdSize++
	if err := Write(new(bytes.Buffer), h, bytes.NewReader(etcd)); err == nil {
		t.Error("Write accepted a header that does not describe its etcd snapshot")
	}
}

func TestPending(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.berth")
	p, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	p.WriteString("half")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the file is at its path before Commit: %v", err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	p.Abort() // no effect after Commit
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := Create(path, false); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Create over an existing file: %v", err)
	}
	p, err = Create(filepath.Join(dir, "other"), false)
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries after an Abort, want 1 (no temporary file left)", len(entries))
	}
}
