package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/api/validation"
)

// BytesFile is the name LoadBytes gives the Compose file in its errors and
// warnings.
const BytesFile = "compose.yaml"

// LoadBytes loads a Compose project from one file's content, as Load does
// from files, for callers handed the content rather than a path (the web
// dashboard). opts.Files is ignored; a nil opts.Environment means an empty
// one, so that a server never interpolates its own environment. Without a
// project name in opts or the file, the app is named "app". The project has
// no directory: build contexts are not usable, and secrets and configs
// cannot come from files (file:), which would be the caller's own.
func LoadBytes(ctx context.Context, content []byte, opts Options) (*Project, error) {
	tmp, err := os.MkdirTemp("", "berth-compose-")
	if err != nil {
		return nil, fmt.Errorf("compose: temporary directory for the file: %w", err)
	}
	defer os.RemoveAll(tmp)
	// The project directory names the app when nothing else does.
	dir := filepath.Join(tmp, "app")
	path := filepath.Join(dir, BytesFile)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("compose: temporary directory for the file: %w", err)
	}
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return nil, fmt.Errorf("compose: writing the file to %s: %w", dir, err)
	}
	opts.Files = []string{path}
	opts.noFiles = true
	if opts.Environment == nil {
		opts.Environment = map[string]string{}
	}
	p, err := Load(ctx, opts)
	var verrs validation.Errors
	if errors.As(err, &verrs) {
		for i := range verrs {
			verrs[i].File = strings.ReplaceAll(verrs[i].File, path, BytesFile)
			verrs[i].Reason = strings.ReplaceAll(verrs[i].Reason, path, BytesFile)
		}
		return nil, verrs
	}
	if err != nil {
		return nil, err
	}
	for i, w := range p.Warnings {
		p.Warnings[i] = strings.ReplaceAll(w, path, BytesFile)
	}
	p.Dir = ""
	return p, nil
}
