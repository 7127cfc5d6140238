package jsonlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
)

// DriverArg is the first argument of the berth binary when a containerd
// shim runs it as a container's logging binary: the shim passes the
// binary:// URI's query as arguments, and DriverArgs makes that one pair,
// DriverArg and the encoded settings.
const DriverArg = "log-driver"

// DriverArgs are the query of the binary:// log URI that makes the shim
// run `berth log-driver SETTINGS`, writing the container's output to
// path with opts.
func DriverArgs(path string, opts Options) map[string]string {
	v := url.Values{}
	v.Set("path", path)
	v.Set("max-size", strconv.FormatInt(opts.MaxSize, 10))
	v.Set("max-file", strconv.Itoa(opts.MaxFiles))
	return map[string]string{DriverArg: v.Encode()}
}

// parseDriverArg reads what DriverArgs encoded.
func parseDriverArg(s string) (string, Options, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return "", Options{}, fmt.Errorf("jsonlog: driver settings %q: %w", s, err)
	}
	path := v.Get("path")
	if !filepath.IsAbs(path) {
		return "", Options{}, fmt.Errorf("jsonlog: driver settings %q: path must be absolute", s)
	}
	size, err := strconv.ParseInt(v.Get("max-size"), 10, 64)
	if err != nil {
		return "", Options{}, fmt.Errorf("jsonlog: driver settings %q: max-size: %w", s, err)
	}
	files, err := strconv.Atoi(v.Get("max-file"))
	if err != nil {
		return "", Options{}, fmt.Errorf("jsonlog: driver settings %q: max-file: %w", s, err)
	}
	return path, Options{MaxSize: size, MaxFiles: files}, nil
}

// RunDriverIfAsked runs the logging binary and exits when the process was
// started as one (os.Args is [berth log-driver SETTINGS]); otherwise it
// returns at once. main calls it first, before anything else starts.
func RunDriverIfAsked() {
	if len(os.Args) != 3 || os.Args[1] != DriverArg {
		return
	}
	logging.Run(func(ctx context.Context, cfg *logging.Config, ready func() error) error {
		return drive(ctx, os.Args[2], cfg.Stdout, cfg.Stderr, ready)
	})
}

// drive copies the container's two streams into the json-file log that
// settings name until both end (the container's process and all that
// hold its output exited) or ctx ends (the shim stopped the driver).
func drive(ctx context.Context, settings string, stdout, stderr io.Reader, ready func() error) error {
	path, opts, err := parseDriverArg(settings)
	if err != nil {
		return err
	}
	w, err := NewWriter(path, opts)
	if err != nil {
		return err
	}
	if err := ready(); err != nil {
		w.Close()
		return fmt.Errorf("jsonlog: tell the shim the driver is ready: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []struct {
		name string
		r    io.Reader
	}{{Stdout, stdout}, {Stderr, stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Copy(w, s.name, s.r)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Stopped: unblock the copiers.
		for _, r := range []io.Reader{stdout, stderr} {
			if c, ok := r.(io.Closer); ok {
				c.Close()
			}
		}
		<-done
	}
	return errors.Join(errors.Join(errs...), w.Close())
}
