package build

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// extractContext unpacks the build context tar r into dir. Every entry
// stays inside dir: names that climb out are refused, and the files are
// written through an os.Root, so a symbolic link in the context cannot
// redirect a later entry outside it. Device files and FIFOs are skipped: a
// build context holds files, directories and links.
func extractContext(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: build context: reading the tar: %v", ErrInvalid, err)
		}
		name, err := contextPath(hdr.Name)
		if err != nil {
			return fmt.Errorf("%w: build context: %v", ErrInvalid, err)
		}
		if name == "." {
			continue // the context directory itself
		}
		if err := extractEntry(root, tr, hdr, name); err != nil {
			return fmt.Errorf("%w: build context: %s: %v", ErrInvalid, hdr.Name, err)
		}
	}
}

// contextPath turns a tar entry name into a path relative to the context
// directory, refusing names that lead out of it.
func contextPath(name string) (string, error) {
	rel := strings.TrimLeft(filepath.FromSlash(name), string(filepath.Separator))
	if rel == "" {
		return ".", nil
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("entry %q points outside the context", name)
	}
	return filepath.Clean(rel), nil
}

func extractEntry(root *os.Root, r io.Reader, hdr *tar.Header, name string) error {
	mode := hdr.FileInfo().Mode()
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		return root.Chmod(name, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	case tar.TypeReg:
		if err := removeExisting(root, name); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		// Chmod after writing: the umask must not trim the bits COPY keeps.
		return root.Chmod(name, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	case tar.TypeSymlink:
		if err := removeExisting(root, name); err != nil {
			return err
		}
		// The target is not followed here; BuildKit copies the link itself.
		return root.Symlink(hdr.Linkname, name)
	case tar.TypeLink:
		target, err := contextPath(hdr.Linkname)
		if err != nil {
			return err
		}
		if err := removeExisting(root, name); err != nil {
			return err
		}
		return root.Link(target, name)
	default:
		// Devices, FIFOs and tar's own metadata entries carry no context.
		return nil
	}
}

// removeExisting removes an earlier entry of the same name, as tar does,
// so a file cannot be written through a link that stood there.
func removeExisting(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("a directory of that name is already in the context")
	}
	return root.Remove(name)
}
