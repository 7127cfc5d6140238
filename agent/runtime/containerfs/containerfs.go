// Package containerfs copies files out of and into a running container's
// file tree (`berth cp`), reached through its init process's root
// (/proc/<pid>/root), as tar archives. Every path is resolved inside that
// root (openat2 RESOLVE_IN_ROOT, via pathrs-lite): a symlink, absolute or
// with "..", never leads out of the container; inside a copied directory
// nothing is followed at all. Regular files, directories and symlinks
// are copied with their modes and modification times; device files,
// FIFOs and sockets are refused.
package containerfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/agent/runtime"
)

// MaxCopy is the most file data one copy moves, either way: enough for
// configuration, dumps and small data sets; bigger transfers belong in a
// volume or an image.
const MaxCopy = 1 << 30

// The errors of a copy: the runtime's, so that callers test for them
// with errors.Is whatever copied.
var (
	ErrNotFound = runtime.ErrPathNotFound
	ErrTooLarge = runtime.ErrTooLarge
)

// Tar writes the file or directory at p (resolved inside root) to w as a
// tar archive whose top entry is named after p's last element, with at
// most limit bytes of file data.
func Tar(root, p string, w io.Writer, limit int64) error {
	h, err := pathrs.OpenInRoot(root, p)
	if err != nil {
		return openError(p, err)
	}
	defer h.Close()
	tw := tar.NewWriter(w)
	t := &tarrer{tw: tw, left: limit}
	name := path.Base(path.Clean("/" + p))
	if name == "/" {
		name = "."
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		d, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer d.Close()
		if err := t.dir(d, name, p, &st); err != nil {
			return err
		}
	case unix.S_IFREG:
		f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer f.Close()
		if err := t.file(f, name, p, &st); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s is %s; berth cp copies regular files, directories and symlinks", p, kind(st.Mode))
	}
	return tw.Close()
}

type tarrer struct {
	tw   *tar.Writer
	left int64
}

func header(name string, st *unix.Stat_t, typ byte) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     int64(st.Mode & 0o7777),
		Uid:      int(st.Uid),
		Gid:      int(st.Gid),
		ModTime:  time.Unix(st.Mtim.Unix()).UTC(),
		Format:   tar.FormatPAX,
	}
}

func (t *tarrer) file(f *os.File, name, shown string, st *unix.Stat_t) error {
	if st.Size > t.left {
		return fmt.Errorf("%s: %w of %d MiB per call; copy less at once, or use a volume", shown, ErrTooLarge, MaxCopy>>20)
	}
	hdr := header(name, st, tar.TypeReg)
	hdr.Size = st.Size
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	// The file may change while it is read: exactly Size bytes go.
	n, err := io.Copy(t.tw, io.LimitReader(f, st.Size))
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	if n < st.Size {
		if _, err := t.tw.Write(make([]byte, st.Size-n)); err != nil {
			return err
		}
	}
	t.left -= st.Size
	return nil
}

// dir writes directory d and what it holds, looking up each entry in d
// itself without following symlinks.
func (t *tarrer) dir(d *os.File, name, shown string, st *unix.Stat_t) error {
	if err := t.tw.WriteHeader(header(name+"/", st, tar.TypeDir)); err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	dfd := int(d.Fd())
	for _, e := range entries {
		child, childShown := name+"/"+e.Name(), shown+"/"+e.Name()
		var cst unix.Stat_t
		if err := unix.Fstatat(dfd, e.Name(), &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("%s: %w", childShown, err)
		}
		switch cst.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			buf := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(dfd, e.Name(), buf)
			if err != nil {
				return fmt.Errorf("%s: %w", childShown, err)
			}
			hdr := header(child, &cst, tar.TypeSymlink)
			hdr.Linkname = string(buf[:n])
			if err := t.tw.WriteHeader(hdr); err != nil {
				return err
			}
		case unix.S_IFDIR, unix.S_IFREG:
			flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
			if cst.Mode&unix.S_IFMT == unix.S_IFDIR {
				flags |= unix.O_DIRECTORY
			}
			fd, err := unix.Openat(dfd, e.Name(), flags, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", childShown, err)
			}
			f := os.NewFile(uintptr(fd), childShown)
			if cst.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = t.dir(f, child, childShown, &cst)
			} else {
				err = t.file(f, child, childShown, &cst)
			}
			f.Close()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is %s; berth cp copies regular files, directories and symlinks", childShown, kind(cst.Mode))
		}
	}
	return nil
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device file"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	}
	return "not a regular file"
}

func openError(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", p, err)
}

// Untar unpacks the tar archive r at p (resolved inside root): into p
// when p is a directory, else as p itself (the archive's top entry takes
// p's name, in p's parent, which must exist), like docker cp. At most
// limit bytes of file data are written. It returns how many entries it
// wrote.
func Untar(root, p string, r io.Reader, limit int64) (int, error) {
	rootDir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer rootDir.Close()
	clean := path.Clean("/" + p)
	into, rename := clean, ""
	if h, err := pathrs.OpenatInRoot(rootDir, clean); err == nil {
		var st unix.Stat_t
		err := unix.Fstat(int(h.Fd()), &st)
		h.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			into, rename = path.Dir(clean), path.Base(clean)
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		into, rename = path.Dir(clean), path.Base(clean)
		h, err := pathrs.OpenatInRoot(rootDir, into)
		if err != nil {
			return 0, openError(into, err)
		}
		h.Close()
	} else {
		return 0, fmt.Errorf("%s: %w", p, err)
	}

	u := &untarrer{root: rootDir, into: into, left: limit}
	tr := tar.NewReader(r)
	var top string
	n := 0
	// Directories' times are set last: writing into one changes its mtime.
	type dirTime struct {
		rel string
		at  time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("read the archive: %w", err)
		}
		name := path.Clean(hdr.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return n, fmt.Errorf("archive entry %q leads out of the destination", hdr.Name)
		}
		first, rest, _ := strings.Cut(name, "/")
		if name == "." || top == "." {
			// An archive of a directory's contents (tar -C dir -c .).
			first, rest = ".", strings.TrimPrefix(name, ".")
		}
		if top == "" {
			top = first
		} else if rename != "" && first != top {
			return n, fmt.Errorf("the archive holds several entries (%s, %s); copy it into a directory", top, first)
		}
		if rename != "" {
			name = path.Join(rename, rest)
		}
		if err := u.entry(name, hdr, tr); err != nil {
			return n, err
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		}
		n++
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := u.chtimes(dirs[i].rel, dirs[i].at); err != nil {
			return n, err
		}
	}
	return n, nil
}

type untarrer struct {
	root *os.File
	into string
	left int64
}

// parent opens (making it when missing) the directory that holds rel,
// inside the root.
func (u *untarrer) parent(rel string) (*os.File, string, error) {
	full := path.Join(u.into, rel)
	dir, err := pathrs.MkdirAllHandle(u.root, path.Dir(full), 0o755)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path.Dir(full), err)
	}
	d, err := pathrs.Reopen(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	dir.Close()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path.Dir(full), err)
	}
	return d, path.Base(full), nil
}

func (u *untarrer) entry(rel string, hdr *tar.Header, r io.Reader) error {
	full := path.Join(u.into, rel)
	d, base, err := u.parent(rel)
	if err != nil {
		return err
	}
	defer d.Close()
	dfd := int(d.Fd())
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(dfd, base, mode); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: %w", full, err)
		}
		fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		err = unix.Fchmod(fd, mode)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		return nil
	case tar.TypeReg:
		if hdr.Size > u.left {
			return fmt.Errorf("%s: %w of %d MiB per call; copy less at once, or use a volume", full, ErrTooLarge, MaxCopy>>20)
		}
		u.left -= hdr.Size
		// Whatever is there (a symlink above all) goes first: the new
		// file is made, never written through.
		if err := unlinkNonDir(dfd, base); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		f := os.NewFile(uintptr(fd), full)
		_, err = io.Copy(f, io.LimitReader(r, hdr.Size))
		if err == nil {
			err = f.Chmod(fs.FileMode(mode&0o777) | modeBits(mode))
		}
		if err == nil {
			ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
			err = unix.UtimesNanoAt(dfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		return nil
	case tar.TypeSymlink:
		if err := unlinkNonDir(dfd, base); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		if err := unix.Symlinkat(hdr.Linkname, dfd, base); err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		_ = unix.UtimesNanoAt(dfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("%s: the archive holds a device file or FIFO; berth cp copies regular files, directories and symlinks", full)
	default:
		return fmt.Errorf("%s: the archive holds an entry of type %q (hard links and others are not copied)", full, hdr.Typeflag)
	}
}

// modeBits turns the setuid, setgid and sticky bits of a Unix mode into
// Go's.
func modeBits(mode uint32) fs.FileMode {
	var m fs.FileMode
	if mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func unlinkNonDir(dfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("a directory is in the way of a file")
	}
	return unix.Unlinkat(dfd, name, 0)
}

func (u *untarrer) chtimes(rel string, at time.Time) error {
	d, base, err := u.parent(rel)
	if err != nil {
		return err
	}
	defer d.Close()
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(at.UnixNano())}
	if err := unix.UtimesNanoAt(int(d.Fd()), base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("%s: %w", path.Join(u.into, rel), err)
	}
	return nil
}
