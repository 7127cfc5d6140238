// Package snapshot takes snapshots of a cluster: a consistent copy of etcd
// through its maintenance API, in a snapshot file (api/snapshotfile) that
// may carry the key-encryption key sealed with a passphrase. The API
// streams one to `berth snapshot save`; the leader also writes them
// periodically into the data dir (Periodic).
package snapshot

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/berthproject/berth/api/snapshotfile"
	"github.com/berthproject/berth/api/version"
	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
)

// ErrNeedPassphrase is the error of a snapshot asked with its key but no
// passphrase to seal it with.
var ErrNeedPassphrase = errors.New("a snapshot carries the cluster's key-encryption key sealed with a passphrase: give one (--passphrase-file or $BERTH_SNAPSHOT_PASSPHRASE), or leave the key out with --without-key and keep the key file yourself")

// tempPattern names the etcd snapshots held while a file is made.
const tempPattern = ".etcd-snapshot-*.db"

// RemoveLeftovers removes what snapshots cut short by a crash left in
// tempDir and in the periodic snapshots' dir: temporary files, never a
// snapshot.
func RemoveLeftovers(tempDir, periodicDir string) {
	for _, pattern := range []string{filepath.Join(tempDir, tempPattern), filepath.Join(periodicDir, "."+filePrefix+"*"+fileSuffix+".tmp-*")} {
		leftovers, _ := filepath.Glob(pattern)
		for _, f := range leftovers {
			os.Remove(f)
		}
	}
}

// Config is what a Maker needs.
type Config struct {
	Store *store.Store
	// ClusterID names the cluster in the file's header.
	ClusterID func() string
	// Address is the server's advertised address, for the header; nil
	// leaves it out.
	Address func() string
	// KEK is the cluster's key-encryption key; nil takes snapshots
	// without it only.
	KEK *seal.Key
	// TempDir holds the etcd snapshot while a file is made; default the
	// system's temporary directory.
	TempDir string
	Log     *slog.Logger
}

// Maker takes snapshots.
type Maker struct {
	cfg Config
	now func() time.Time
}

// New returns a Maker.
func New(cfg Config) *Maker {
	cfg.Log = cmp.Or(cfg.Log, slog.Default())
	return &Maker{cfg: cfg, now: time.Now}
}

// Options say what a snapshot carries.
type Options struct {
	// Passphrase seals the key-encryption key in the file.
	Passphrase []byte
	// WithoutKey leaves the key out; Passphrase is then not needed.
	WithoutKey bool
}

// Save writes a snapshot file to w and returns its header. Nothing is
// written to w before the etcd snapshot is whole and checked, so a
// failure leaves w empty unless w itself failed.
func (m *Maker) Save(ctx context.Context, w io.Writer, opts Options) (snapshotfile.Header, error) {
	if !opts.WithoutKey {
		if len(opts.Passphrase) == 0 {
			return snapshotfile.Header{}, ErrNeedPassphrase
		}
		if m.cfg.KEK == nil {
			return snapshotfile.Header{}, errors.New("this server has no key-encryption key to put in the snapshot; save it --without-key")
		}
	}
	// The etcd snapshot is kept whole before the file is written: its
	// checksum and revision go in the header, before it.
	tmp, err := os.CreateTemp(m.cfg.TempDir, tempPattern)
	if err != nil {
		return snapshotfile.Header{}, fmt.Errorf("a temporary file for the etcd snapshot: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	created := m.now().UTC()
	rc, err := m.cfg.Store.Snapshot(ctx)
	if err != nil {
		return snapshotfile.Header{}, err
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), rc)
	rc.Close()
	// The embedded member's in-process client ends a finished snapshot
	// stream with context.Canceled rather than io.EOF: the snapshot is
	// whole when etcd's own checksum at its end says so.
	if err != nil && (ctx.Err() != nil || !errors.Is(err, context.Canceled)) {
		return snapshotfile.Header{}, fmt.Errorf("receiving the etcd snapshot: %w", err)
	}
	if cerr := checkEtcdTrailer(tmp, n); cerr != nil {
		if err != nil {
			return snapshotfile.Header{}, fmt.Errorf("receiving the etcd snapshot: %w", err)
		}
		return snapshotfile.Header{}, cerr
	}
	if err := tmp.Sync(); err != nil {
		return snapshotfile.Header{}, fmt.Errorf("writing the etcd snapshot: %w", err)
	}
	st, err := etcd.StatSnapshot(tmp.Name())
	if err != nil {
		return snapshotfile.Header{}, err
	}
	h := snapshotfile.Header{
		BerthVersion: version.String(), ClusterID: m.cfg.ClusterID(), ServerAddress: m.address(),
		EtcdRevision: st.Revision, EtcdStorageVersion: st.StorageVersion,
		Created: created, EtcdSHA256: hex.EncodeToString(sum.Sum(nil)), EtcdSize: n,
	}
	if !opts.WithoutKey {
		raw := m.cfg.KEK.Raw()
		h.Key, err = snapshotfile.SealKey(raw, opts.Passphrase, h)
		clear(raw)
		if err != nil {
			return snapshotfile.Header{}, err
		}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return snapshotfile.Header{}, err
	}
	if err := snapshotfile.Write(w, h, tmp); err != nil {
		return snapshotfile.Header{}, err
	}
	m.cfg.Log.Info("snapshot taken", "revision", h.EtcdRevision, "etcd_bytes", h.EtcdSize, "keys", st.Keys, "with_key", h.Key != nil)
	return h, nil
}

// address is the server's advertised address, or "".
func (m *Maker) address() string {
	if m.cfg.Address == nil {
		return ""
	}
	return m.cfg.Address()
}

// checkEtcdTrailer checks the etcd snapshot in f, n bytes: etcd ends it
// with the sha256 of what comes before.
func checkEtcdTrailer(f *os.File, n int64) error {
	if n <= sha256.Size {
		return fmt.Errorf("the etcd snapshot received is %d bytes: cut short", n)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, n-sha256.Size)); err != nil {
		return fmt.Errorf("reading the etcd snapshot back: %w", err)
	}
	trailer := make([]byte, sha256.Size)
	if _, err := f.ReadAt(trailer, n-sha256.Size); err != nil {
		return fmt.Errorf("reading the etcd snapshot back: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), trailer) {
		return errors.New("the etcd snapshot received does not match etcd's checksum at its end: it was cut short or damaged")
	}
	return nil
}
