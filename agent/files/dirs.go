package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where Dirs mounts the containers' tmpfs: in memory, and
// out of the agent's data dir, which is on disk.
const DefaultRoot = "/run/berth/files"

// Dirs keeps one tmpfs per container, at <root>/<owner hash>/<container
// id>, holding that container's files. The mounts outlive the agent, so a
// restarted agent's adopted containers keep their files; they go with the
// container (Remove), or with the machine.
type Dirs struct {
	dir string
}

// NewDirs returns the tmpfs set of the agent named owner (the node id)
// under root (DefaultRoot when empty). Agents sharing a machine get a
// directory each, made with the first Write.
func NewDirs(root, owner string) (*Dirs, error) {
	if owner == "" {
		return nil, errors.New("files: an owner is required: it keeps agents sharing a machine apart")
	}
	if root == "" {
		root = DefaultRoot
	}
	sum := sha256.Sum256([]byte(owner))
	return &Dirs{dir: filepath.Join(root, hex.EncodeToString(sum[:8]))}, nil
}

// Dir returns the directory of container id's tmpfs.
func (d *Dirs) Dir(id string) string { return filepath.Join(d.dir, id) }

// Write mounts a new tmpfs for container id (replacing one it had), writes
// files into it with their owners and modes, and makes it read-only. It
// returns the path of each file on the node, in the order of files, for
// the runtime to bind-mount at each Target.
func (d *Dirs) Write(id string, files []File) (paths []string, err error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	if err := d.Remove(id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("files: create %s: %w", d.dir, err)
	}
	if err := os.Chmod(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	dir := d.Dir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("files of container %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = d.Remove(id)
		}
	}()
	opts := "mode=0700,size=" + strconv.FormatInt(tmpfsSize(files), 10)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return nil, fmt.Errorf("files of container %s: mount tmpfs at %s: %w", id, dir, err)
	}
	paths = make([]string, 0, len(files))
	for i, f := range files {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := writeFile(p, f); err != nil {
			return nil, fmt.Errorf("files of container %s: %s: %w", id, f, err)
		}
		paths = append(paths, p)
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, fmt.Errorf("files of container %s: make read-only: %w", id, err)
	}
	return paths, nil
}

// tmpfsSize is enough for files: each takes whole pages, plus room for
// the directory.
func tmpfsSize(files []File) int64 {
	const page = 4096
	size := int64(16 * page)
	for _, f := range files {
		size += (int64(len(f.Data)) + page - 1) / page * page
	}
	return size
}

func writeFile(path string, f File) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.Write(f.Data); err != nil {
		out.Close()
		return err
	}
	if err := unix.Fchown(int(out.Fd()), int(f.UID), int(f.GID)); err != nil {
		out.Close()
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(int(out.Fd()), uint32(f.Mode.Perm())); err != nil {
		out.Close()
		return fmt.Errorf("chmod: %w", err)
	}
	return out.Close()
}

// Remove unmounts container id's tmpfs and deletes its directory;
// idempotent.
func (d *Dirs) Remove(id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	dir := d.Dir(id)
	for {
		err := unix.Unmount(dir, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(dir, unix.MNT_DETACH)
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("files of container %s: unmount %s: %w", id, dir, err)
		}
		// Mounted twice (a Write cut short after a mount)? Go on.
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("files of container %s: %w", id, err)
	}
	return nil
}

// List returns the containers that have a tmpfs, so a runtime can remove
// those of containers that are gone.
func (d *Dirs) List() ([]string, error) {
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func validateID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 255 {
		return fmt.Errorf("files: container id %q cannot name a directory", id)
	}
	return nil
}
