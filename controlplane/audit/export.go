package audit

import (
	"fmt"
	"io"
	"os"
)

// OpenExport opens the file that records are exported to as JSON lines:
// appended to, made readable by its owner only (records say who did what,
// from where); "-" is standard error.
func OpenExport(path string) (io.WriteCloser, error) {
	if path == "-" {
		return nopCloser{os.Stderr}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w (check --audit-log)", err)
	}
	// A file that existed keeps its mode otherwise.
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("audit log %s: making it private: %w", path, err)
		}
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
