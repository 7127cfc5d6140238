// Package snapshotfile is the format of a Berth snapshot file: what
// `berth snapshot save` writes, the servers' periodic snapshots, and what
// `berth snapshot inspect` and `restore` read.
//
// A file is a small header and the cluster's etcd snapshot, compressed:
//
//	"BERTHSNP"  magic, 8 bytes
//	1           format version, 1 byte
//	N           header length, 4 bytes big endian
//	header      N bytes of JSON (Header)
//	payload     the etcd snapshot, zstd-compressed, to the end of the file
//
// The header's EtcdSHA256 checks the payload. The header may carry the
// cluster's key-encryption key, sealed with a key derived from the
// operator's passphrase (scrypt, then AES-256-GCM; see SealKey): never in
// plain text. The etcd part needs no passphrase: every secret in it is
// already sealed with the key-encryption key.
package snapshotfile

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Magic starts every snapshot file.
const Magic = "BERTHSNP"

// Format is the version of the layout this package writes and reads.
const Format = 1

// CompressionZstd is the payload's compression.
const CompressionZstd = "zstd"

// maxHeader bounds a header, so a damaged length cannot make a reader
// allocate gigabytes.
const maxHeader = 1 << 20

// Errors callers branch on.
var (
	// ErrNotSnapshot means the file does not start as a snapshot file.
	ErrNotSnapshot = errors.New("not a Berth snapshot file")
	// ErrChecksum means the etcd snapshot in the file does not match the
	// checksum its header recorded: the file is damaged.
	ErrChecksum = errors.New("the etcd snapshot in the file does not match its checksum")
	// ErrPassphrase means the sealed key did not open with the passphrase
	// given.
	ErrPassphrase = errors.New("wrong passphrase")
	// ErrNoKey means the file carries no key-encryption key.
	ErrNoKey = errors.New("the snapshot carries no key-encryption key")
)

// Header is what a snapshot file says about itself. It holds no secret
// in plain text.
type Header struct {
	// BerthVersion is the version of the server that took the snapshot.
	BerthVersion string `json:"berth_version"`
	// ClusterID is the id of the cluster's CA.
	ClusterID string `json:"cluster_id"`
	// ServerAddress is the address the server that took the snapshot
	// advertised (its agents' --join); a restored server listens there
	// for them to reconnect. Empty when unknown.
	ServerAddress string `json:"server_address,omitempty"`
	// EtcdRevision is etcd's revision in the snapshot.
	EtcdRevision int64 `json:"etcd_revision"`
	// EtcdStorageVersion is etcd's storage version, as its snapshot
	// says (3.6.0); empty when unknown.
	EtcdStorageVersion string `json:"etcd_storage_version,omitempty"`
	// Created is when the snapshot was taken.
	Created time.Time `json:"created"`
	// EtcdSHA256 is the hex sha256 of the etcd snapshot, as etcd's
	// maintenance API streams it (its own checksum at the end included).
	EtcdSHA256 string `json:"etcd_sha256"`
	// EtcdSize is the etcd snapshot's size in bytes, uncompressed.
	EtcdSize int64 `json:"etcd_size"`
	// Compression is the payload's compression: CompressionZstd.
	Compression string `json:"compression"`
	// Key is the cluster's key-encryption key sealed with a passphrase;
	// nil when the snapshot was saved without it.
	Key *SealedKey `json:"key,omitempty"`
}

// Write writes a snapshot file to w: h, then etcd compressed. h's
// EtcdSHA256 and EtcdSize must be those of what etcd yields; Write
// checks them as it goes and fails when they differ.
func Write(w io.Writer, h Header, etcd io.Reader) error {
	h.Compression = CompressionZstd
	head, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("snapshot header: %w", err)
	}
	pre := make([]byte, 0, len(Magic)+5)
	pre = append(pre, Magic...)
	pre = append(pre, Format)
	pre = binary.BigEndian.AppendUint32(pre, uint32(len(head)))
	if _, err := w.Write(pre); err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	// One goroutine: the servers share their cores with the containers
	// they run, and a snapshot is no hurry.
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	sum := sha256.New()
	n, err := io.Copy(zw, io.TeeReader(etcd, sum))
	if err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if n != h.EtcdSize || hex.EncodeToString(sum.Sum(nil)) != h.EtcdSHA256 {
		return fmt.Errorf("the etcd snapshot changed while it was written (%d bytes, header says %d)", n, h.EtcdSize)
	}
	return nil
}

// Reader reads a snapshot file: its header, then its etcd snapshot.
type Reader struct {
	Header Header
	r      *bufio.Reader
}

// NewReader reads the header of the snapshot file r. Its errors wrap
// ErrNotSnapshot when r is not one.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReader(r)
	pre := make([]byte, len(Magic)+5)
	if _, err := io.ReadFull(br, pre); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: it is too short", ErrNotSnapshot)
		}
		return nil, err
	}
	if string(pre[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrNotSnapshot, Magic)
	}
	if v := pre[len(Magic)]; v != Format {
		return nil, fmt.Errorf("snapshot file format %d is not one this berth reads (format %d): use the berth release that wrote it, or a newer one", v, Format)
	}
	n := binary.BigEndian.Uint32(pre[len(Magic)+1:])
	if n > maxHeader {
		return nil, fmt.Errorf("%w: its header claims %d bytes; the file is damaged", ErrNotSnapshot, n)
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("%w: its header is cut short; the file is damaged", ErrNotSnapshot)
	}
	var h Header
	if err := json.Unmarshal(head, &h); err != nil {
		return nil, fmt.Errorf("%w: its header does not read (%v); the file is damaged", ErrNotSnapshot, err)
	}
	if h.Compression != CompressionZstd {
		return nil, fmt.Errorf("snapshot compression %q is not one this berth reads", h.Compression)
	}
	if len(h.EtcdSHA256) != 2*sha256.Size {
		return nil, fmt.Errorf("%w: its header has no etcd checksum; the file is damaged", ErrNotSnapshot)
	}
	return &Reader{Header: h, r: br}, nil
}

// CopyEtcd writes the file's etcd snapshot to w and checks it against
// the header: a damaged file fails with an error wrapping ErrChecksum,
// having written some of it, so w should be a temporary file. Call it
// once.
func (r *Reader) CopyEtcd(w io.Writer) error {
	zr, err := zstd.NewReader(r.r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return err
	}
	defer zr.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(taggedWriter{w}, sum), zr)
	if err != nil {
		var werr writeError
		if errors.As(err, &werr) {
			return werr.err
		}
		// A flipped byte in the compressed data mostly breaks the
		// decompression before the checksum is reached.
		return fmt.Errorf("%w (decompressing it failed: %v); the file is damaged", ErrChecksum, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); n != r.Header.EtcdSize || got != r.Header.EtcdSHA256 {
		return fmt.Errorf("%w (sha256 %s, %d bytes; the header says %s, %d bytes); the file is damaged", ErrChecksum, got, n, r.Header.EtcdSHA256, r.Header.EtcdSize)
	}
	return nil
}

// writeError marks an error of the destination, not of the file.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

// taggedWriter marks its writer's errors as writeErrors.
type taggedWriter struct{ w io.Writer }

func (t taggedWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}
