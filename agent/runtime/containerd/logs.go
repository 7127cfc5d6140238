package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

// logPollInterval is how often a followed log file is checked for new
// output. The shim appends to the file from its own process, so there is
// no event to wait on short of inotify; 100ms is below what people notice.
const logPollInterval = 100 * time.Millisecond

// Logs calls fn with the lines container id has written. The shim writes
// stdout and stderr of a container into one file without timestamps, so
// every line comes as Stdout, and the lines written before the call with
// a zero At; followed lines that arrive later carry the time they were
// read, within logPollInterval of when they were written. For the same
// reason opts.Since can only be honoured by the file's modification time:
// a file last written before Since gives no old lines, any other gives
// them all. With opts.Follow it returns when the container's process has
// exited and its output is read, or when ctx ends.
func (c *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions, fn func(runtime.LogLine) error) error {
	ctx = c.ctx(ctx)
	if _, err := c.load(ctx, id); err != nil {
		return err
	}
	var exited <-chan runtime.Exit
	if opts.Follow {
		waitCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := c.Wait(waitCtx, id)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			// Never started: there is nothing to follow.
		case err != nil:
			return err
		default:
			exited = ch
		}
	}
	f, err := os.Open(c.logPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil // not started yet, so no output
	}
	if err != nil {
		return fmt.Errorf("runtime: logs of container %s: %w", id, err)
	}
	defer f.Close()
	if err := readLogSince(ctx, f, opts.Tail, opts.Since, exited, fn); err != nil {
		return fmt.Errorf("runtime: logs of container %s: %w", id, err)
	}
	return nil
}

// readLog calls fn for each line of f, starting tail lines before its end
// (tail < 0: from the start). With exited non-nil it keeps reading what is
// appended until exited delivers, then reads what is left and returns.
func readLog(ctx context.Context, f *os.File, tail int64, exited <-chan runtime.Exit, fn func(runtime.LogLine) error) error {
	return readLogSince(ctx, f, tail, time.Time{}, exited, fn)
}

// readLogSince is readLog that skips what f held before the call when f
// was last written before since (non-zero). Lines that start past what f
// held at the call (new output, when following) carry the time they were
// read.
func readLogSince(ctx context.Context, f *os.File, tail int64, since time.Time, exited <-chan runtime.Exit, fn func(runtime.LogLine) error) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	start, err := tailOffset(f, info.Size(), tail)
	if err != nil {
		return err
	}
	if !since.IsZero() && info.ModTime().Before(since) {
		start = info.Size()
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}

	var ticker *time.Ticker
	if exited != nil {
		ticker = time.NewTicker(logPollInterval)
		defer ticker.Stop()
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var partial []byte
	// read is the file offset past what was read; lineStart is where the
	// line being read starts. A line starting at or past the size f had
	// at the call is new output.
	read, lineStart := start, start
	// drained is set once the process exited; lastEnd is the file offset
	// at the last end of file.
	var drained bool
	lastEnd := int64(-1)
	stamp := func() time.Time {
		at := time.Time{}
		if lineStart >= info.Size() {
			at = time.Now()
		}
		lineStart = read
		return at
	}
	for {
		chunk, err := br.ReadSlice('\n')
		read += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: keep collecting it.
			partial = append(partial, chunk...)
			continue
		}
		if n := len(chunk); n > 0 && chunk[n-1] == '\n' {
			// append copies out of the reader's buffer, which the next
			// read overwrites.
			line := append(partial, chunk[:n-1]...)
			partial = nil
			if err := fn(runtime.LogLine{Stream: runtime.Stdout, At: stamp(), Line: line}); err != nil {
				return err
			}
		} else {
			partial = append(partial, chunk...)
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		pos, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		// Following a process that exited: the shim copies its output to
		// the file and may still be at it when the exit is seen, so stop
		// only once a poll interval passed with nothing more written.
		if ticker == nil || (drained && pos == lastEnd) {
			if len(partial) > 0 {
				return fn(runtime.LogLine{Stream: runtime.Stdout, At: stamp(), Line: partial})
			}
			return nil
		}
		lastEnd = pos
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			exited = nil // received once; a nil channel blocks
			drained = true
			// Read what is there now; the next end of file decides.
			lastEnd = -1
		case <-ticker.C:
		}
	}
}

// tailOffset returns the offset in r (of size bytes) where its last n
// lines start; a final newline ends the last line rather than starting
// an empty one. n < 0 means all lines.
func tailOffset(r io.ReaderAt, size, n int64) (int64, error) {
	if n < 0 {
		return 0, nil
	}
	if n == 0 {
		return size, nil
	}
	buf := make([]byte, 32<<10)
	var found int64
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := r.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' || start+int64(i) == size-1 {
				continue
			}
			if found++; found == n {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}
