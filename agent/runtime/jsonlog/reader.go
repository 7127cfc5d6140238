package jsonlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

// PollInterval is how often a followed log file is checked for new
// output. The logging binary appends from its own process, so there is
// no event to wait on short of inotify; 100ms is below what people notice.
const PollInterval = 100 * time.Millisecond

// maxJoined bounds a line put back together from split entries; the rest
// comes as further lines, so one endless line cannot exhaust memory.
const maxJoined = 1 << 20

// Read calls fn with the lines of the log at path and its rotated files,
// oldest first, as opts selects them: Since and Until by each line's time,
// then the last Tail lines. Lines of a plain file (what the shim wrote
// before Berth kept json) come as Stdout without a time; for Since and
// Until they count as written when the file was last written. With exited
// non-nil Read follows: it keeps reading what is appended, also across
// rotations, until exited delivers (then it reads what is left), ctx ends,
// or a line past Until comes. A missing log gives no lines.
func Read(ctx context.Context, path string, opts runtime.LogOptions, exited <-chan runtime.Exit, fn func(runtime.LogLine) error) error {
	r := &reader{opts: opts, fn: fn}
	if opts.Tail >= 0 && (!opts.Since.IsZero() || !opts.Until.IsZero()) {
		// The last Tail lines of those selected by time: only known
		// once all are read.
		r.ring = make([]runtime.LogLine, 0, min(opts.Tail, 4096))
	}
	files := logFiles(path)
	var start, first int64
	if opts.Tail >= 0 && r.ring == nil {
		var err error
		if first, start, err = tailStart(files, opts.Tail); err != nil {
			return err
		}
	}
	var cur *os.File
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	for i := first; i < int64(len(files)); i++ {
		f, err := os.Open(files[i])
		if errors.Is(err, os.ErrNotExist) {
			continue // rotated away meanwhile
		}
		if err != nil {
			return err
		}
		off := int64(0)
		if i == first {
			off = start
		}
		if i < int64(len(files))-1 {
			err = r.readFile(f, off, true)
			f.Close()
			if err != nil {
				return r.stop(err)
			}
			continue
		}
		cur = f
		if err := r.readFile(f, off, exited == nil); err != nil {
			return r.stop(err)
		}
	}
	if err := r.flushRing(); err != nil {
		return r.stop(err)
	}
	if exited == nil || cur == nil {
		return r.stop(r.flushPending())
	}
	return r.stop(r.follow(ctx, path, cur, exited))
}

// errPastUntil ends a read at the first line written after Until.
var errPastUntil = errors.New("past until")

// stop ends a read with err; a line past Until ends it well, with the
// lines kept for Tail.
func (r *reader) stop(err error) error {
	if errors.Is(err, errPastUntil) {
		return r.flushRing()
	}
	return err
}

// logFiles returns path's rotated files, oldest first, then path; only
// those that exist, and path whether or not it does.
func logFiles(path string) []string {
	var rotated []string
	for n := 1; ; n++ {
		p := RotatedPath(path, n)
		if _, err := os.Stat(p); err != nil {
			break
		}
		rotated = append(rotated, p)
	}
	out := make([]string, 0, len(rotated)+1)
	for i := len(rotated) - 1; i >= 0; i-- {
		out = append(out, rotated[i])
	}
	return append(out, path)
}

// tailStart returns the file (an index into files) and the offset in it
// where the last n lines start.
func tailStart(files []string, n int64) (int64, int64, error) {
	for i := len(files) - 1; i >= 0; i-- {
		f, err := os.Open(files[i])
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		info, err := f.Stat()
		if err != nil {
			f.Close()
			return 0, 0, err
		}
		off, found, err := tailOffset(f, info.Size(), n)
		f.Close()
		if err != nil {
			return 0, 0, err
		}
		if found == n || i == 0 {
			return int64(i), off, nil
		}
		n -= found
	}
	return 0, 0, nil
}

// tailOffset returns the offset in r (of size bytes) where its last n
// lines start, and how many lines it found (fewer than n when r holds
// fewer); a final newline ends the last line rather than starting an
// empty one.
func tailOffset(r io.ReaderAt, size, n int64) (int64, int64, error) {
	if n <= 0 {
		return size, 0, nil
	}
	buf := make([]byte, 32<<10)
	var found int64
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := r.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' || start+int64(i) == size-1 {
				continue
			}
			if found++; found == n {
				return start + int64(i) + 1, found, nil
			}
		}
		end = start
	}
	if size > 0 {
		found++ // the first line, which no newline precedes
	}
	return 0, found, nil
}

// reader turns the raw lines of log files into LogLines.
type reader struct {
	opts runtime.LogOptions
	fn   func(runtime.LogLine) error
	// ring keeps the last Tail selected lines when they are selected by
	// time; nil sends each line to fn at once.
	ring []runtime.LogLine
	next int // where the ring's oldest line is, once it is full
	// pending holds the pieces of a split line read so far.
	pending       []byte
	pendingStream runtime.LogStream
	pendingAt     time.Time
	// plainAt is the time a plain line counts as written for Since and
	// Until; plainKnown is set when lines read now are new output (their
	// time is the time they are read).
	plainAt    time.Time
	plainKnown bool
}

// readFile reads f from off to its end; final reads a last line that
// lacks its newline too.
func (r *reader) readFile(f *os.File, off int64, final bool) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	r.plainAt, r.plainKnown = info.ModTime(), false
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	_, err = r.readAll(f, final)
	return err
}

// readAll reads f's lines up to its end, and returns whether it read any
// bytes. A last line without its newline is left unread, to be read whole
// once it is, unless final.
func (r *reader) readAll(f *os.File, final bool) (bool, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	var line []byte
	var any bool
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			any = true
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil {
			if err := r.raw(line[:len(line)-1]); err != nil {
				return any, err
			}
			line = line[:0]
			continue
		}
		if !errors.Is(err, io.EOF) {
			return any, err
		}
		if len(line) > 0 && final {
			return any, r.raw(line)
		}
		if len(line) > 0 {
			// Unfinished: read it again next time.
			if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
				return any, err
			}
		}
		return any, nil
	}
}

// raw takes one line of a file, without its newline.
func (r *reader) raw(b []byte) error {
	var e entry
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &e) == nil && (e.Stream == Stdout || e.Stream == Stderr) {
		stream := runtime.Stdout
		if e.Stream == Stderr {
			stream = runtime.Stderr
		}
		if len(r.pending) > 0 && stream != r.pendingStream {
			// The other stream's split line never finished.
			if err := r.flushPending(); err != nil {
				return err
			}
		}
		if len(r.pending) == 0 {
			r.pendingStream, r.pendingAt = stream, e.Time
		}
		r.pending = append(r.pending, e.Log...)
		if n := len(r.pending); n > 0 && r.pending[n-1] == '\n' {
			r.pending = r.pending[:n-1]
			return r.flushPending()
		}
		if len(r.pending) >= maxJoined {
			return r.flushPending()
		}
		return nil
	}
	if err := r.flushPending(); err != nil {
		return err
	}
	at, shown := r.plainAt, time.Time{}
	if r.plainKnown {
		at = time.Now()
		shown = at
	}
	return r.emit(runtime.LogLine{Stream: runtime.Stdout, At: shown, Line: bytes.Clone(b)}, at)
}

func (r *reader) flushPending() error {
	if len(r.pending) == 0 {
		return nil
	}
	l := runtime.LogLine{Stream: r.pendingStream, At: r.pendingAt, Line: r.pending}
	r.pending = nil
	return r.emit(l, l.At)
}

// emit passes on l, written at at, if Since and Until keep it.
func (r *reader) emit(l runtime.LogLine, at time.Time) error {
	if !r.opts.Since.IsZero() && at.Before(r.opts.Since) {
		return nil
	}
	if !r.opts.Until.IsZero() && at.After(r.opts.Until) {
		return errPastUntil
	}
	if r.ring == nil {
		return r.fn(l)
	}
	if r.opts.Tail == 0 {
		return nil
	}
	if int64(len(r.ring)) < r.opts.Tail {
		r.ring = append(r.ring, l)
		return nil
	}
	r.ring[r.next] = l
	r.next = (r.next + 1) % len(r.ring)
	return nil
}

func (r *reader) flushRing() error {
	if r.ring == nil {
		return nil
	}
	ring := r.ring
	r.ring = nil
	for i := range ring {
		if err := r.fn(ring[(r.next+i)%len(ring)]); err != nil {
			return err
		}
	}
	return nil
}

// follow reads what is appended to cur, the file at path, and to the
// files that replace it at path when it is rotated, until exited
// delivers and the writer has stopped, ctx ends, or a line comes past
// Until.
func (r *reader) follow(ctx context.Context, path string, cur *os.File, exited <-chan runtime.Exit) error {
	r.plainKnown = true
	ticker := time.NewTicker(PollInterval)
	defer ticker.Stop()
	// drained is set once the process exited; the logging binary may
	// still be writing its last output then, so reading stops only once
	// a poll interval passed with nothing new.
	var drained, ticked bool
	for {
		got, err := r.readAll(cur, false)
		if err != nil {
			return err
		}
		next, err := rotated(path, cur)
		if err != nil {
			return err
		}
		if next != nil {
			// Whatever was written before the rotation is read above;
			// read it again in case more came in between.
			if _, err := r.readAll(cur, true); err != nil {
				next.Close()
				return err
			}
			cur.Close()
			cur = next
			continue
		}
		if drained && ticked && !got {
			if _, err := r.readAll(cur, true); err != nil {
				return err
			}
			return r.flushPending()
		}
		ticked = false
		if !r.opts.Until.IsZero() && time.Now().After(r.opts.Until) {
			return r.flushPending()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			exited = nil // received once; a nil channel blocks
			drained = true
		case <-ticker.C:
			ticked = true
		}
	}
}

// rotated returns the file now at path when it is not cur (cur was
// rotated away), opened, or nil.
func rotated(path string, cur *os.File) (*os.File, error) {
	now, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // between the rename and the new file
	}
	if err != nil {
		return nil, err
	}
	was, err := cur.Stat()
	if err != nil {
		return nil, err
	}
	if os.SameFile(now, was) {
		return nil, nil
	}
	return os.Open(path)
}
