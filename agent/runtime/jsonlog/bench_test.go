package jsonlog

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

// BenchmarkCopy measures the log driver's cost per line: 100-byte lines
// copied from a pipe into a json-file log rotated at 10 MB × 3.
func BenchmarkCopy(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 99)
	line = append(line, '\n')
	input := bytes.Repeat(line, 10000)
	w, err := NewWriter(filepath.Join(b.TempDir(), "c.log"), Options{MaxSize: DefaultMaxSize, MaxFiles: DefaultMaxFiles})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.SetBytes(int64(len(input)))
	b.ResetTimer()
	for b.Loop() {
		if err := Copy(w, Stdout, bytes.NewReader(input)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkReadTail measures berth logs --tail 100 on a full 10 MB log.
func BenchmarkReadTail(b *testing.B) {
	benchRead(b, runtime.LogOptions{Tail: 100})
}

// BenchmarkReadSince measures a read that parses every line of a full
// 10 MB log for its time (--since).
func BenchmarkReadSince(b *testing.B) {
	benchRead(b, runtime.LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)})
}

func benchRead(b *testing.B, opts runtime.LogOptions) {
	path := filepath.Join(b.TempDir(), "c.log")
	w, err := NewWriter(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; w.size < DefaultMaxSize; i++ {
		w.Write(Stdout, fmt.Appendf(nil, "line %d of a benchmark log, padded to look like a real one\n", i), time.Now())
	}
	w.Close()
	b.ResetTimer()
	for b.Loop() {
		if err := Read(b.Context(), path, opts, nil, func(runtime.LogLine) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
