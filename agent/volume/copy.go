package volume

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// CopyUp fills dst, a new volume's data directory, with what an image
// holds at target (an absolute path in the image), as Docker does for a
// new volume: dst takes the owner and mode of target's directory, and
// gets a copy of everything under it (owners, modes, times, symbolic
// links as links, hard links as links, device nodes and FIFOs; sockets
// are left out). rootfs is the image's root file system; target is
// resolved in it as the container would see it (its symbolic links stay
// inside rootfs). An image with nothing at target, or a file there, leaves
// dst empty.
func CopyUp(dst, rootfs, target string) error {
	src, err := securejoin.SecureJoin(rootfs, target)
	if err != nil {
		return fmt.Errorf("copy %s of the image: %w", target, err)
	}
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy %s of the image: %w", target, err)
	}
	if !fi.IsDir() {
		return nil
	}
	if err := CopyTree(dst, src); err != nil {
		return fmt.Errorf("copy %s of the image: %w", target, err)
	}
	return nil
}

// CopyTree copies the contents of directory src into existing directory
// dst, and src's owner, mode and times onto dst. Symbolic links are
// copied, never followed.
func CopyTree(dst, src string) error {
	c := treeCopy{links: map[inode]string{}}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		return c.entry(filepath.Join(dst, rel), path, rel == ".")
	})
	if err != nil {
		return err
	}
	// A directory's times last: writing into it changed them.
	for _, d := range slices.Backward(c.dirs) {
		if err := setTimes(d.path, d.st); err != nil {
			return err
		}
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type dirTimes struct {
	path string
	st   *unix.Stat_t
}

type treeCopy struct {
	links map[inode]string // first copy of each file with several links
	dirs  []dirTimes
}

func (c *treeCopy) entry(dst, src string, root bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: src, Err: err}
	}
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if !root {
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		}
		if err := setOwnerMode(dst, &st, perm); err != nil {
			return err
		}
		if err := copyXattrs(dst, src); err != nil {
			return err
		}
		c.dirs = append(c.dirs, dirTimes{dst, &st})
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		return setTimes(dst, &st)
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := c.links[key]; ok {
				return os.Link(first, dst)
			}
			c.links[key] = dst
		}
		if err := copyFile(dst, src, &st, perm); err != nil {
			return err
		}
		// After the owner: chown drops security.capability.
		if err := copyXattrs(dst, src); err != nil {
			return err
		}
		return setTimes(dst, &st)
	case unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return &fs.PathError{Op: "mknod", Path: dst, Err: err}
		}
		if err := setOwnerMode(dst, &st, perm); err != nil {
			return err
		}
		return setTimes(dst, &st)
	default: // sockets: only a live process gives them meaning
		return nil
	}
}

func copyFile(dst, src string, st *unix.Stat_t, perm uint32) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	// Owner before mode: chown clears the setuid and setgid bits.
	if err := unix.Fchown(int(out.Fd()), int(st.Uid), int(st.Gid)); err != nil {
		out.Close()
		return &fs.PathError{Op: "chown", Path: dst, Err: err}
	}
	if err := unix.Fchmod(int(out.Fd()), perm); err != nil {
		out.Close()
		return &fs.PathError{Op: "chmod", Path: dst, Err: err}
	}
	return out.Close()
}

// copyXattrs gives dst the extended attributes of src: file capabilities
// (security.capability) and the like, which programs in images rely on.
// A file system that keeps none, on either side, is not an error.
func copyXattrs(dst, src string) error {
	size, err := unix.Llistxattr(src, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "listxattr", Path: src, Err: err}
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(src, buf); err != nil {
		return &fs.PathError{Op: "listxattr", Path: src, Err: err}
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return &fs.PathError{Op: "getxattr " + name, Path: src, Err: err}
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(src, name, val); err != nil {
			return &fs.PathError{Op: "getxattr " + name, Path: src, Err: err}
		}
		if err := unix.Lsetxattr(dst, name, val[:n], 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return &fs.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}

func setOwnerMode(path string, st *unix.Stat_t, perm uint32) error {
	if err := unix.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return &fs.PathError{Op: "chown", Path: path, Err: err}
	}
	if err := unix.Chmod(path, perm); err != nil {
		return &fs.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

func setTimes(path string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: path, Err: err}
	}
	return nil
}

// treeSize adds up the sizes of what is under root, each file once however
// many links it has, without following symbolic links. Entries that go
// away during the walk (a container is writing) are left out.
func treeSize(root string) (int64, error) {
	seen := map[inode]bool{}
	var size int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		size += info.Size()
		return nil
	})
	return size, err
}
