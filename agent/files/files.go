// Package files gives containers their secret and config files. The data
// arrives with the assignments of the tasks that use it and is kept in
// memory (Payloads); when a container is made its files are written to a
// tmpfs of its own (Dirs), which the runtime bind-mounts read-only into
// the container, file by file. The data never reaches the node's disk and
// is never logged.
package files

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strconv"

	"github.com/berthproject/berth/api/validation"
)

// ErrNotDelivered is returned, wrapped, when a task names a version of a
// secret or config whose data this node was not sent: the task cannot run
// here.
var ErrNotDelivered = errors.New("file data not delivered")

// File is one secret or config file of a container.
type File struct {
	// Target is the file's absolute path in the container.
	Target string
	Data   []byte
	UID    uint32
	GID    uint32
	// Mode holds the file's permission bits.
	Mode os.FileMode
	// Secret says the data is a secret's (else a config's).
	Secret bool
	// Name is the secret's or config's name, for messages.
	Name string
}

// String describes f without its data, so that a file printed by mistake
// reveals nothing.
func (f File) String() string {
	kind := "config"
	if f.Secret {
		kind = "secret"
	}
	return fmt.Sprintf("%s %s at %s (%d bytes, %d:%d, %04o)", kind, f.Name, f.Target, len(f.Data), f.UID, f.GID, f.Mode.Perm())
}

// GoString is String, for %#v.
func (f File) GoString() string { return f.String() }

// LogValue is String, for slog.
func (f File) LogValue() slog.Value { return slog.StringValue(f.String()) }

// DefaultMode is a file's mode when its reference gives none.
const DefaultMode os.FileMode = validation.DefaultFileMode

// Target is where a file of a secret (secret) or config named name goes in
// a container whose reference asks for target, by the rule the control
// plane validates with (a secret's relative target is under
// /run/secrets, a config's under /); an empty target is the name.
func Target(secret bool, name, target string) string {
	if target == "" {
		target = name
	}
	if secret {
		return path.Clean(validation.SecretTarget(target))
	}
	return path.Clean(validation.ConfigTarget(target))
}

// kind is "secret" or "config", as messages name them.
func kind(secret bool) string {
	if secret {
		return "secret"
	}
	return "config"
}

func notDelivered(secret bool, name string, version uint64) error {
	return fmt.Errorf("%s %s version %s was not delivered to this node: %w", kind(secret), name, strconv.FormatUint(version, 10), ErrNotDelivered)
}
