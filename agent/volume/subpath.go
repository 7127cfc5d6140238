package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// Subpath returns the directory of volume data dir data that a mount with
// subpath sub shows, making it (mode 0755) when it does not exist. sub
// must be relative and without "..": a mount shows part of its volume,
// never more. Symbolic links in the volume are resolved as if data were
// the root, so one cannot lead out of the volume either.
func Subpath(data, sub string) (string, error) {
	if sub == "" {
		return data, nil
	}
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("volume subpath %q must be relative to the volume's root", sub)
	}
	for _, part := range strings.Split(filepath.ToSlash(sub), "/") {
		if part == ".." {
			return "", fmt.Errorf("volume subpath %q must not contain '..': it has to stay inside the volume", sub)
		}
	}
	path, err := securejoin.SecureJoin(data, sub)
	if err != nil {
		return "", fmt.Errorf("volume subpath %q: %w", sub, err)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(path, 0o755); err != nil {
			return "", fmt.Errorf("volume subpath %q: %w", sub, err)
		}
	case err != nil:
		return "", fmt.Errorf("volume subpath %q: %w", sub, err)
	case !fi.IsDir() && !fi.Mode().IsRegular():
		return "", fmt.Errorf("volume subpath %q is neither a directory nor a file", sub)
	}
	// A link swapped in since the join would show here.
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("volume subpath %q: %w", sub, err)
	}
	resolvedData, err := filepath.EvalSymlinks(data)
	if err != nil {
		return "", fmt.Errorf("volume subpath %q: %w", sub, err)
	}
	if resolved != resolvedData && !strings.HasPrefix(resolved, resolvedData+string(filepath.Separator)) {
		return "", fmt.Errorf("volume subpath %q leads out of the volume", sub)
	}
	return resolved, nil
}
