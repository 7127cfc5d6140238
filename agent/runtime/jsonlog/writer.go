// Package jsonlog keeps container output in Docker's json-file shape: one
// JSON object a line, {"log":"...\n","stream":"stdout","time":"..."},
// stdout and stderr apart, each line timestamped when it was written, and
// the file rotated by size (<id>.log, <id>.log.1, ... like Docker). The
// writing side runs as a containerd logging binary (Driver), so logs keep
// flowing while the agent is down; the reading side (Read) serves
// `berth logs`, across rotated files and the plain files of containers
// started before Berth wrote json.
package jsonlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/berthproject/berth/api/validation"
)

// Options bound a container's log files.
type Options struct {
	// MaxSize is the size in bytes past which the file is rotated; 0 or
	// less never rotates.
	MaxSize int64
	// MaxFiles is how many files are kept, the one being written
	// included; less than 1 is 1.
	MaxFiles int
}

// The defaults of a cluster that sets none: 10 MB × 3.
const (
	DefaultMaxSize  = validation.DefaultLogMaxSize
	DefaultMaxFiles = validation.DefaultLogMaxFiles
)

// MaxLine is the longest piece of a line kept in one entry; longer lines
// are split into entries whose "log" has no final newline, as Docker does.
const MaxLine = 16 << 10

// The stream names of entries.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// entry is one line of a json-file log.
type entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Writer appends entries to a log file, rotating it by size. It is safe
// for concurrent use by the copiers of both streams.
type Writer struct {
	path string
	opts Options

	mu   sync.Mutex
	f    *os.File
	size int64
	// dropped counts the entries lost to write errors (a full disk)
	// since the last one written; the next entry that is written is
	// preceded by a note saying how many.
	dropped int64
	now     func() time.Time
}

// NewWriter opens (or creates) the log file at path for appending.
func NewWriter(path string, opts Options) (*Writer, error) {
	if opts.MaxFiles < 1 {
		opts.MaxFiles = 1
	}
	w := &Writer{path: path, opts: opts, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("jsonlog: open %s: %w", w.path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("jsonlog: open %s: %w", w.path, err)
	}
	w.f, w.size = f, info.Size()
	return nil
}

// Write appends one entry of stream holding msg (a line with its newline,
// or a piece of one without) written at. An entry that cannot be written
// is dropped and counted, never retried: the container must not wait on
// the disk.
func (w *Writer) Write(stream string, msg []byte, at time.Time) error {
	b, err := encode(stream, msg, at)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dropped > 0 {
		note, _ := encode(Stderr, []byte("berth: "+strconv.FormatInt(w.dropped, 10)+" log lines were dropped: the node could not write them (is its disk full?)\n"), at)
		if w.write(note) == nil {
			w.dropped = 0
		}
	}
	if err := w.write(b); err != nil {
		w.dropped++
		return err
	}
	return nil
}

// Dropped returns how many entries were dropped and not yet noted in the file.
func (w *Writer) Dropped() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

func (w *Writer) write(b []byte) error {
	if w.f == nil {
		// A rotation failed to reopen; try again.
		if err := w.open(); err != nil {
			return err
		}
	}
	if w.opts.MaxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.opts.MaxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("jsonlog: write %s: %w", w.path, err)
	}
	return nil
}

// rotate shifts path.N-1 to path.N ... path to path.1, dropping the
// oldest beyond MaxFiles, and starts a new path.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		w.f = nil
		return fmt.Errorf("jsonlog: rotate %s: %w", w.path, err)
	}
	w.f = nil
	if w.opts.MaxFiles == 1 {
		if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("jsonlog: rotate %s: %w", w.path, err)
		}
		return w.open()
	}
	last := RotatedPath(w.path, w.opts.MaxFiles-1)
	if err := os.Remove(last); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("jsonlog: rotate %s: %w", w.path, err)
	}
	for i := w.opts.MaxFiles - 1; i > 1; i-- {
		if err := os.Rename(RotatedPath(w.path, i-1), RotatedPath(w.path, i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("jsonlog: rotate %s: %w", w.path, err)
		}
	}
	if err := os.Rename(w.path, RotatedPath(w.path, 1)); err != nil {
		return fmt.Errorf("jsonlog: rotate %s: %w", w.path, err)
	}
	return w.open()
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// RotatedPath is the name of the n-th rotated file of path (path itself
// for n = 0).
func RotatedPath(path string, n int) string {
	if n == 0 {
		return path
	}
	return path + "." + strconv.Itoa(n)
}

func encode(stream string, msg []byte, at time.Time) ([]byte, error) {
	b, err := json.Marshal(entry{Log: string(msg), Stream: stream, Time: at.UTC()})
	if err != nil {
		return nil, fmt.Errorf("jsonlog: encode: %w", err)
	}
	return append(b, '\n'), nil
}

// Copy writes what r delivers to w as entries of stream, a line each,
// until r ends. Each entry is stamped when it is read. A line longer than
// MaxLine is split into entries without a final newline, as Docker does;
// so is the unfinished end of what one read got, so that a prompt or a
// last line without a newline is in the file at once rather than when
// the pipe closes (the reader joins the pieces). Write errors drop the
// entry (Writer counts them) and copying goes on, so the container's
// pipe never fills.
func Copy(w *Writer, stream string, r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		at := w.now()
		for data := buf[:n]; len(data) > 0; {
			end := min(len(data), MaxLine)
			if i := bytes.IndexByte(data[:end], '\n'); i >= 0 {
				end = i + 1
			}
			_ = w.Write(stream, data[:end], at)
			data = data[end:]
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed), errors.Is(err, io.ErrClosedPipe):
			return nil
		default:
			return err
		}
	}
}
