// Package volume keeps a node's local volumes: named volumes, which hold
// their data across the tasks of a slot, under
// <data dir>/volumes/<namespace>/<name>/_data, and scratch volumes, which
// live as long as one container, under <data dir>/containers/<id>/scratch.
//
// The runtime marks which of its containers use which named volumes
// (Acquire, Release), so a volume in use cannot be removed; it restores
// the marks at start from the containers' labels (see Label).
package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	apivolume "github.com/berthproject/berth/api/volume"
	"github.com/berthproject/berth/internal/keylock"
)

// ErrInUse is returned, wrapped, when a volume a container uses is asked
// to be removed.
var ErrInUse = errors.New("volume in use")

// Ref names one named volume of a namespace.
type Ref struct{ Namespace, Name string }

// String writes r as "namespace/name", the form Label uses.
func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// Validate says why r cannot name a volume on disk (an
// *InvalidRefError), or nil. Both parts become directory names, so both
// follow the volume naming rule.
func (r Ref) Validate() error {
	if err := apivolume.ValidateName(r.Name); err != nil {
		return &InvalidRefError{Ref: r, Err: err}
	}
	if err := apivolume.ValidateName(r.Namespace); err != nil {
		return &InvalidRefError{Ref: r, Err: fmt.Errorf("namespace of volume %s: %w", r.Name, err)}
	}
	return nil
}

// InvalidRefError says a Ref cannot name a volume.
type InvalidRefError struct {
	Ref Ref
	Err error
}

func (e *InvalidRefError) Error() string { return e.Err.Error() }

func (e *InvalidRefError) Unwrap() error { return e.Err }

// Fill puts a new volume's first contents into dir (the volume's _data
// directory, still out of sight of other users); see CopyUp.
type Fill func(dir string) error

// Store holds a node's volumes.
type Store struct {
	root        string // <data dir>/volumes
	scratchRoot string // <data dir>/containers
	log         *slog.Logger
	locks       keylock.Locks

	mu    sync.Mutex
	users map[Ref]map[string]bool // container ids
}

// New returns the store of the agent whose data dir is dataDir, and
// removes what a store cut short (by a crash) left behind: half-made
// volumes and volumes half removed.
func New(dataDir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{
		root:        filepath.Join(dataDir, "volumes"),
		scratchRoot: filepath.Join(dataDir, "containers"),
		log:         log,
		users:       map[Ref]map[string]bool{},
	}
	for _, dir := range []string{s.root, s.scratchRoot} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("volumes: create %s: %w", dir, err)
		}
	}
	s.collectLeftovers()
	return s, nil
}

// collectLeftovers removes the hidden entries ("." names, which no valid
// name has) of the volume tree: volumes being made or removed when the
// agent stopped.
func (s *Store) collectLeftovers() {
	remove := func(dir string) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					s.log.Warn("removing a leftover of a volume", "path", filepath.Join(dir, e.Name()), "err", err)
				}
			}
		}
	}
	remove(s.root)
	namespaces, _ := os.ReadDir(s.root)
	for _, ns := range namespaces {
		if ns.IsDir() {
			remove(filepath.Join(s.root, ns.Name()))
		}
	}
}

// Path returns the directory that holds volume ref's data, whether or not
// it exists yet.
func (s *Store) Path(ref Ref) (string, error) {
	if err := ref.Validate(); err != nil {
		return "", err
	}
	return filepath.Join(s.root, ref.Namespace, ref.Name, "_data"), nil
}

// Ensure returns the data directory of volume ref, making the volume when
// it does not exist; created says it was made now. A new volume gets its
// contents from fill (nil leaves it empty) before anyone sees it: a fill
// cut short leaves no volume, and the next Ensure tries again.
//
// Call Acquire before Ensure, so a Remove in between cannot delete the
// volume from under the container.
func (s *Store) Ensure(ref Ref, fill Fill) (path string, created bool, err error) {
	path, err = s.Path(ref)
	if err != nil {
		return "", false, err
	}
	unlock := s.locks.Lock(ref.String())
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("volume %s: %w", ref, err)
	}
	nsDir := filepath.Join(s.root, ref.Namespace)
	if err := os.MkdirAll(nsDir, 0o700); err != nil {
		return "", false, fmt.Errorf("volume %s: %w", ref, err)
	}
	if err := makeFilled(nsDir, ref.Name, fill); err != nil {
		return "", false, fmt.Errorf("volume %s: %w", ref, err)
	}
	s.log.Info("volume created", "volume", ref.String())
	return path, true, nil
}

// makeFilled makes parent/name/_data through a hidden directory that is
// renamed into place once fill is done.
func makeFilled(parent, name string, fill Fill) error {
	tmp, err := os.MkdirTemp(parent, ".new-"+name+"-")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	data := filepath.Join(tmp, "_data")
	if err := os.Mkdir(data, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// Mkdir's mode went through the umask.
	if err := os.Chmod(data, 0o755); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if fill != nil {
		if err := fill(data); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("fill: %w", err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(parent, name)); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// Size returns the size of volume ref's data in bytes (each file once,
// symbolic links not followed); exists is false for a volume this node
// has no data of.
func (s *Store) Size(ref Ref) (size int64, exists bool, err error) {
	path, err := s.Path(ref)
	if err != nil {
		return 0, false, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, fmt.Errorf("volume %s: %w", ref, err)
	}
	size, err = treeSize(path)
	if err != nil {
		return 0, true, fmt.Errorf("volume %s: size: %w", ref, err)
	}
	return size, true, nil
}

// Remove deletes volume ref and its data; nil when it does not exist.
// While a container of this node uses it the error wraps ErrInUse.
func (s *Store) Remove(ref Ref) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	unlock := s.locks.Lock(ref.String())
	defer unlock()
	if users := s.Users(ref); len(users) > 0 {
		return fmt.Errorf("volume %s is used by container %s on this node; remove its task first: %w", ref, strings.Join(users, ", "), ErrInUse)
	}
	nsDir := filepath.Join(s.root, ref.Namespace)
	dir := filepath.Join(nsDir, ref.Name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Out of sight first, so a removal cut short leaves no half volume
	// under the name (New removes the rest).
	trash, err := os.MkdirTemp(nsDir, ".removed-"+ref.Name+"-")
	if err != nil {
		return fmt.Errorf("remove volume %s: %w", ref, err)
	}
	if err := os.Rename(dir, filepath.Join(trash, "volume")); err != nil {
		os.Remove(trash)
		return fmt.Errorf("remove volume %s: %w", ref, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove volume %s: %w", ref, err)
	}
	// The namespace's directory goes with its last volume; failing only
	// means it is not empty.
	_ = os.Remove(nsDir)
	s.log.Info("volume removed", "volume", ref.String())
	return nil
}

// List returns the volumes this node holds, sorted.
func (s *Store) List() ([]Ref, error) {
	namespaces, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Ref
	for _, ns := range namespaces {
		if !ns.IsDir() || strings.HasPrefix(ns.Name(), ".") {
			continue
		}
		names, err := os.ReadDir(filepath.Join(s.root, ns.Name()))
		if err != nil {
			return nil, fmt.Errorf("list volumes: %w", err)
		}
		for _, n := range names {
			ref := Ref{Namespace: ns.Name(), Name: n.Name()}
			if n.IsDir() && ref.Validate() == nil {
				out = append(out, ref)
			}
		}
	}
	return out, nil
}

// Acquire marks refs as used by container id until Release(id).
// Acquiring again is harmless.
func (s *Store) Acquire(id string, refs ...Ref) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range refs {
		if s.users[r] == nil {
			s.users[r] = map[string]bool{}
		}
		s.users[r][id] = true
	}
}

// Release drops container id's marks on every volume; idempotent.
func (s *Store) Release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r, ids := range s.users {
		delete(ids, id)
		if len(ids) == 0 {
			delete(s.users, r)
		}
	}
}

// Users returns the containers that use volume ref, sorted.
func (s *Store) Users(ref Ref) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.users[ref]))
	for id := range s.users[ref] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Scratch returns the data directory of container id's scratch volume
// number index (a mount with no source), making it, filled by fill, when
// it does not exist. It goes with RemoveScratch.
func (s *Store) Scratch(id string, index int, fill Fill) (string, error) {
	if err := validateContainerID(id); err != nil {
		return "", err
	}
	parent := filepath.Join(s.scratchRoot, id, "scratch")
	name := strconv.Itoa(index)
	path := filepath.Join(parent, name, "_data")
	unlock := s.locks.Lock("scratch/" + id)
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("scratch volume of container %s: %w", id, err)
	}
	if err := makeFilled(parent, name, fill); err != nil {
		return "", fmt.Errorf("scratch volume of container %s: %w", id, err)
	}
	return path, nil
}

// RemoveScratch deletes container id's scratch volumes; idempotent.
func (s *Store) RemoveScratch(id string) error {
	if err := validateContainerID(id); err != nil {
		return err
	}
	unlock := s.locks.Lock("scratch/" + id)
	defer unlock()
	if err := os.RemoveAll(filepath.Join(s.scratchRoot, id)); err != nil {
		return fmt.Errorf("scratch volumes of container %s: %w", id, err)
	}
	return nil
}

// ScratchContainers returns the ids of the containers that have scratch
// volumes, so a runtime can remove those of containers that are gone.
func (s *Store) ScratchContainers() ([]string, error) {
	entries, err := os.ReadDir(s.scratchRoot)
	if err != nil {
		return nil, fmt.Errorf("list scratch volumes: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && validateContainerID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func validateContainerID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 255 {
		return fmt.Errorf("container id %q cannot name a directory", id)
	}
	return nil
}
