package cli

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// tarLocal writes the file or directory at p to w as a tar archive whose
// top entry is named after p's last element. Symlinks are archived as
// links, not followed; device files, FIFOs and sockets are refused.
func tarLocal(p string, w io.Writer) error {
	tw := tar.NewWriter(w)
	top := filepath.Base(filepath.Clean(p))
	err := filepath.WalkDir(p, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(p, file)
		if err != nil {
			return err
		}
		name := path.Join(top, filepath.ToSlash(rel))
		var link string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(file); err != nil {
				return err
			}
		case info.Mode().IsDir(), info.Mode().IsRegular():
		default:
			return fmt.Errorf("%s is not a regular file, directory or symlink; berth cp does not copy devices, FIFOs or sockets", file)
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = name, "", ""
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		// Exactly the size in the header, even if the file changes.
		n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
		if err == nil && n < hdr.Size {
			_, err = tw.Write(make([]byte, hdr.Size-n))
		}
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// untarLocal unpacks the tar archive r at local: into it when it is a
// directory, else as local itself (the archive's top entry takes its
// name, in its parent directory, which must exist). Every entry stays
// inside that directory: the archive comes from a container, so its
// names and symlinks are not trusted (os.Root refuses to leave it).
func untarLocal(r io.Reader, local string) error {
	into, rename := local, ""
	if info, err := os.Stat(local); err != nil || !info.IsDir() {
		into, rename = filepath.Dir(local), filepath.Base(local)
	}
	root, err := os.OpenRoot(into)
	if err != nil {
		return err
	}
	defer root.Close()
	type dirTime struct {
		name string
		at   time.Time
	}
	var dirs []dirTime
	var top string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean(hdr.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("archive entry %q leads out of the destination", hdr.Name)
		}
		first, rest, _ := strings.Cut(name, "/")
		if name == "." || top == "." {
			// An archive of a directory's contents (tar -C dir -c .).
			first, rest = ".", strings.TrimPrefix(name, ".")
		}
		if top == "" {
			top = first
		} else if rename != "" && first != top {
			return fmt.Errorf("the archive holds several entries (%s, %s); copy it into a directory", top, first)
		}
		if rename != "" {
			name = path.Join(rename, rest)
		}
		mode := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeReg:
			if err := replaceable(root, name); err != nil {
				return err
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = root.Chmod(name, mode)
			}
			if err == nil {
				err = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := replaceable(root, name); err != nil {
				return err
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return err
			}
		default:
			return fmt.Errorf("archive entry %s is of type %q; berth cp copies regular files, directories and symlinks", hdr.Name, hdr.Typeflag)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chtimes(dirs[i].name, dirs[i].at, dirs[i].at); err != nil {
			return err
		}
	}
	return nil
}

// replaceable removes what is at name in root unless it is a directory,
// so a file or link can be made there anew (never written through).
func replaceable(root *os.Root, name string) error {
	info, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("%s is a directory", name)
	}
	return root.Remove(name)
}
