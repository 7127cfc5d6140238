// Command mkimage writes a busybox image archive (an OCI image layout tar)
// built offline from the static busybox on this machine, for tests and
// `make images`:
//
//	go run ./hack/mkimage -ref localhost/busybox:latest -o bin/images/busybox.tar
//
// -add puts more files from this machine into the image, such as the e2e
// test program:
//
//	go run ./hack/mkimage -ref localhost/testapp:latest -add /bin/testapp=bin/images/testapp -o bin/images/testapp.tar
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/internal/testimage"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		ref     = flag.String("ref", "localhost/busybox:latest", "image reference to name the image")
		out     = flag.String("o", "", "archive file to write (required)")
		busybox = flag.String("busybox", "/usr/bin/busybox", "path of a statically linked busybox")
		workdir = flag.String("workdir", "", "image working directory")
		user    = flag.String("user", "", "image user")
		cmd     = flag.String("cmd", "sh", "image command, split on spaces")
		env     listFlag
		ports   listFlag
		adds    listFlag
	)
	flag.Var(&env, "env", "image environment KEY=VALUE (repeatable; default PATH=/bin)")
	flag.Var(&ports, "expose", "exposed port like 80/tcp (repeatable)")
	flag.Var(&adds, "add", "IMAGE-PATH=FILE: add FILE of this machine to the image, executable, at IMAGE-PATH (repeatable)")
	flag.Parse()
	if *out == "" {
		return fmt.Errorf("-o is required: the archive file to write")
	}
	if len(env) == 0 {
		env = listFlag{"PATH=/bin"}
	}

	files, err := testimage.BusyboxFiles(*busybox)
	if err != nil {
		return err
	}
	for _, add := range adds {
		f, err := addedFile(add)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	cfg := testimage.Config{
		Env:          env,
		Cmd:          strings.Fields(*cmd),
		WorkingDir:   *workdir,
		User:         *user,
		ExposedPorts: ports,
	}

	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	// Write to a temporary file and rename, so an interrupted build never
	// leaves a truncated archive that looks up to date.
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if err := testimage.WriteOCIArchive(w, *ref, files, cfg); err != nil {
		tmp.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), *out)
}

// addedFile reads the file an -add IMAGE-PATH=FILE names.
func addedFile(add string) (testimage.File, error) {
	dst, src, ok := strings.Cut(add, "=")
	if !ok || !strings.HasPrefix(dst, "/") || src == "" {
		return testimage.File{}, fmt.Errorf("-add %q: want IMAGE-PATH=FILE with an absolute IMAGE-PATH, like /bin/testapp=bin/images/testapp", add)
	}
	content, err := os.ReadFile(src)
	if err != nil {
		return testimage.File{}, fmt.Errorf("-add %s: %w", add, err)
	}
	return testimage.File{Path: dst, Mode: 0o755, Content: content}, nil
}
