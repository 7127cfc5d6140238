package seal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// FileName is the key file's name in a server's data dir.
const FileName = "key-encryption-key"

// ReadFile reads a key file: KeySize bytes. A missing file is an error
// that wraps fs.ErrNotExist.
func ReadFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the key-encryption key: %w", err)
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("key-encryption key file %s holds %d bytes, want %d: it is damaged or not a key file; restore it from a backup (berth server key prints a key for one)", path, len(raw), KeySize)
	}
	return raw, nil
}

// WriteNewFile writes raw to a new key file at path, readable by its
// owner only; it never replaces a file.
func WriteNewFile(path string, raw []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key-encryption key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating the key-encryption key file: %w", err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing the key-encryption key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing the key-encryption key file %s: %w", path, err)
	}
	return f.Close()
}

// LooseMode reports whether the key file at path can be read by others
// than its owner.
func LooseMode(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().Perm()&0o077 != 0
}

// IsNotExist reports whether err says a key file is missing.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// Text is a key as an operator writes it: standard base64, as
// --unlock-key and `berth server key` take and print it.
func Text(raw []byte) string { return base64.StdEncoding.EncodeToString(raw) }

// ParseText reads a key written by Text.
func ParseText(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != KeySize {
		return nil, fmt.Errorf("the unlock key is not the base64 of %d bytes (berth server key prints the cluster's key in that form)", KeySize)
	}
	return raw, nil
}

// probeSize is the size of a KeyCheck's random probe.
const probeSize = 32

// NewKeyCheck returns a KeyCheck for k: a random probe sealed under it.
func (k *Key) NewKeyCheck() (*berthv1.KeyCheck, error) {
	probe := make([]byte, probeSize)
	if _, err := rand.Read(probe); err != nil {
		return nil, fmt.Errorf("key check probe: %w", err)
	}
	sealed, err := k.Seal(KindKeyCheck, "probe", probe)
	if err != nil {
		return nil, err
	}
	return &berthv1.KeyCheck{SealedProbe: sealed}, nil
}

// Check reports whether kc was made with k; the error wraps ErrOpen when
// it was not.
func (k *Key) Check(kc *berthv1.KeyCheck) error {
	probe, err := k.Open(KindKeyCheck, "probe", kc.GetSealedProbe())
	if err != nil {
		return err
	}
	if len(probe) != probeSize {
		return fmt.Errorf("%w: the key check record is damaged", ErrOpen)
	}
	return nil
}
