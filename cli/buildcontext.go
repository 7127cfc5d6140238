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

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// ignoreFile is the file at the root of a build context whose patterns
// leave paths out of it.
const ignoreFile = ".dockerignore"

// contextIgnore reads the context's ignore patterns; no file means none.
func contextIgnore(dir string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(dir, ignoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return patternmatcher.New(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ignoreFile, err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, ignoreFile), err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ignoreFile), err)
	}
	return pm, nil
}

// contextTar is a build context being written as a tar: paths relative
// to its root, slash-separated, owned by root (the builder does not care
// who owns the files on the client's machine, and a cache key must not
// either).
type contextTar struct {
	dir string
	tw  *tar.Writer
	// written holds the directories already in the tar, so that a file
	// kept inside an ignored directory (a ! exception) still gets its
	// parents.
	written map[string]bool
}

// writeContext writes the build context in dir to w as a tar, leaving out
// what .dockerignore says, except keep (the Dockerfile's path in the
// context, slash-separated), which is always sent: the builder needs it.
// Symbolic links are sent as links; sockets, pipes and devices are left
// out.
func writeContext(w io.Writer, dir, keep string) error {
	pm, err := contextIgnore(dir)
	if err != nil {
		return err
	}
	ct := &contextTar{dir: dir, tw: tar.NewWriter(w), written: map[string]bool{}}
	keptDockerfile := keep == ""
	parents := map[string]patternmatcher.MatchInfo{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read build context: %w", err)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		ignored, info, err := pm.MatchesUsingParentResults(rel, parents[path.Dir(rel)])
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, ignoreFile), err)
		}
		if d.IsDir() {
			parents[rel] = info
			if ignored {
				// An exception (!pattern) may keep something below: walk
				// it, writing only what is kept. Without exceptions,
				// nothing below can be.
				if !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if ignored {
			return nil
		}
		if rel == keep {
			keptDockerfile = true
		}
		return ct.add(rel)
	})
	if err != nil {
		return err
	}
	if !keptDockerfile {
		if err := ct.add(keep); err != nil {
			return err
		}
	}
	return ct.tw.Close()
}

// add writes one path (relative, slash-separated), after its parent
// directories if they are not in the tar yet.
func (ct *contextTar) add(rel string) error {
	if parent := path.Dir(rel); parent != "." && !ct.written[parent] {
		if err := ct.add(parent); err != nil {
			return err
		}
	}
	full := filepath.Join(ct.dir, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if err != nil {
		return fmt.Errorf("read build context: %w", err)
	}
	var link string
	switch {
	case fi.Mode().IsRegular(), fi.IsDir():
	case fi.Mode()&fs.ModeSymlink != 0:
		if link, err = os.Readlink(full); err != nil {
			return fmt.Errorf("read build context: %w", err)
		}
	default:
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("build context %s: %w", full, err)
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
		ct.written[rel] = true
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := ct.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write build context: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return fmt.Errorf("read build context: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(ct.tw, f); err != nil {
		return fmt.Errorf("write build context %s: %w", full, err)
	}
	return nil
}

// dockerfileIn returns the Dockerfile's path inside the context dir,
// slash-separated, or ok false when it lies outside.
func dockerfileIn(contextDir, dockerfile string) (rel string, ok bool, err error) {
	absCtx, err := filepath.Abs(contextDir)
	if err != nil {
		return "", false, err
	}
	absFile, err := filepath.Abs(dockerfile)
	if err != nil {
		return "", false, err
	}
	r, err := filepath.Rel(absCtx, absFile)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", false, nil
	}
	return filepath.ToSlash(r), true, nil
}
