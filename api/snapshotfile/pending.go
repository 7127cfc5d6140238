package snapshotfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Pending is a file being written: a temporary file beside its final
// path, readable by its owner only, that appears at that path whole
// (Commit) or not at all (Abort).
type Pending struct {
	*os.File
	path string
	done bool
}

// Create starts writing the file at path. It refuses to replace a file
// unless overwrite.
func Create(path string, overwrite bool) (*Pending, error) {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s already exists: choose another file name, or remove it first", path)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	// CreateTemp makes it 0600 already; said again for the reader.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &Pending{File: f, path: path}, nil
}

// Commit makes the file appear at its path, synced to disk.
func (p *Pending) Commit() error {
	if err := p.Sync(); err != nil {
		p.Abort()
		return fmt.Errorf("writing %s: %w", p.path, err)
	}
	if err := p.Close(); err != nil {
		p.Abort()
		return fmt.Errorf("writing %s: %w", p.path, err)
	}
	if err := os.Rename(p.Name(), p.path); err != nil {
		p.Abort()
		return fmt.Errorf("writing %s: %w", p.path, err)
	}
	p.done = true
	if d, err := os.Open(filepath.Dir(p.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort removes the temporary file; after Commit it does nothing, so it
// can be deferred.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	p.Close()
	os.Remove(p.Name())
}
