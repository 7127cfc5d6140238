package jsonlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthproject/berth/agent/runtime"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// readAll returns what Read gives for path with opts, without following.
func readAll(t *testing.T, path string, opts runtime.LogOptions) []runtime.LogLine {
	t.Helper()
	var got []runtime.LogLine
	if err := Read(t.Context(), path, opts, nil, func(l runtime.LogLine) error {
		got = append(got, l)
		return nil
	}); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}

func texts(lines []runtime.LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = string(l.Line)
	}
	return out
}

func TestWriteEntriesAreDockerJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 14, 0, 0, 123456789, time.FixedZone("x", 3600))
	if err := w.Write(Stdout, []byte("hello \"you\"\n"), at); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Stderr, []byte("oops\n"), at); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"log":"hello \"you\"\n","stream":"stdout","time":"2026-12-07T13:00:00.123456789Z"}` + "\n" +
		`{"log":"oops\n","stream":"stderr","time":"2026-12-07T13:00:00.123456789Z"}` + "\n"
	if string(b) != want {
		t.Errorf("file holds\n%s\nwant\n%s", b, want)
	}
	got := readAll(t, path, runtime.LogOptions{Tail: -1})
	if len(got) != 2 || got[0].Stream != runtime.Stdout || got[1].Stream != runtime.Stderr ||
		string(got[0].Line) != `hello "you"` || !got[1].At.Equal(at) {
		t.Errorf("read back %+v, want stdout %q then stderr %q, at %v", got, `hello "you"`, "oops", at)
	}
}

func TestRotationKeepsMaxFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w, err := NewWriter(path, Options{MaxSize: 1000, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := w.Write(Stdout, fmt.Appendf(nil, "line %d\n", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{path, path + ".1"}; !slices.Equal(names, want) {
		t.Fatalf("files %q, want %q", names, want)
	}
	for _, p := range names {
		if info, _ := os.Stat(p); info.Size() > 1000 {
			t.Errorf("%s has %d bytes, over max-size 1000", p, info.Size())
		}
	}
	got := texts(readAll(t, path, runtime.LogOptions{Tail: -1}))
	if len(got) == 0 || got[len(got)-1] != fmt.Sprintf("line %d", n-1) {
		t.Fatalf("read %q, want it to end with the newest line", got)
	}
	first := 0
	fmt.Sscanf(got[0], "line %d", &first)
	for i, l := range got {
		if want := fmt.Sprintf("line %d", first+i); l != want {
			t.Fatalf("line %d is %q, want %q: rotated files read out of order", i, l, want)
		}
	}
	if tail := texts(readAll(t, path, runtime.LogOptions{Tail: 3})); !slices.Equal(tail, got[len(got)-3:]) {
		t.Errorf("--tail 3 read %q, want %q", tail, got[len(got)-3:])
	}
	// A tail longer than the newest file reaches into the rotated one.
	cur := readAll(t, path+".1", runtime.LogOptions{Tail: -1})
	want := got[len(got)-len(cur)-2:]
	if tail := texts(readAll(t, path, runtime.LogOptions{Tail: int64(len(want))})); !slices.Equal(tail, want) {
		t.Errorf("tail across files read %q, want %q", tail, want)
	}
}

func TestMaxFilesOneTruncates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w, err := NewWriter(path, Options{MaxSize: 200, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := w.Write(Stdout, fmt.Appendf(nil, "line %d\n", i), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if !slices.Equal(names, []string{path}) {
		t.Fatalf("files %q, want only %q", names, path)
	}
	if got := texts(readAll(t, path, runtime.LogOptions{Tail: 1})); !slices.Equal(got, []string{"line 19"}) {
		t.Errorf("last line %q, want line 19", got)
	}
}

func TestCopySplitsLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 2*MaxLine+100)
	in := "short\n" + long + "\nno newline at the end"
	if err := Copy(w, Stderr, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, raw := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("line %.40q is not json: %v", raw, err)
		}
		if e.Stream != Stderr || e.Time.IsZero() {
			t.Errorf("entry %.40q: stream %q time %v, want stderr with a time", raw, e.Stream, e.Time)
		}
		if len(e.Log) > MaxLine {
			t.Errorf("entry holds %d bytes, over %d", len(e.Log), MaxLine)
		}
		logs = append(logs, e.Log)
	}
	// short, the long line in three pieces (the last with its newline),
	// the unfinished last line.
	if len(logs) != 5 || strings.HasSuffix(logs[1], "\n") || !strings.HasSuffix(logs[3], "\n") {
		t.Fatalf("entries %.30q, want 5 with the long line split in 3", logs)
	}
	got := texts(readAll(t, path, runtime.LogOptions{Tail: -1}))
	if want := []string{"short", long, "no newline at the end"}; !slices.Equal(got, want) {
		t.Errorf("read %.30q, want %.30q: the split line must come back whole", got, want)
	}
}

func TestReadSinceUntilTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path, Options{MaxSize: 300, MaxFiles: 5})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		stream := Stdout
		if i%2 == 1 {
			stream = Stderr
		}
		if err := w.Write(stream, fmt.Appendf(nil, "%d\n", i), t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		opts runtime.LogOptions
		want []string
	}{
		{"all", runtime.LogOptions{Tail: -1}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"since is inclusive", runtime.LogOptions{Tail: -1, Since: at(7)}, []string{"7", "8", "9"}},
		{"until is inclusive", runtime.LogOptions{Tail: -1, Until: at(2)}, []string{"0", "1", "2"}},
		{"between", runtime.LogOptions{Tail: -1, Since: at(3), Until: at(5)}, []string{"3", "4", "5"}},
		{"tail after until", runtime.LogOptions{Tail: 2, Until: at(5)}, []string{"4", "5"}},
		{"tail after since", runtime.LogOptions{Tail: 5, Since: at(8)}, []string{"8", "9"}},
		{"tail 0", runtime.LogOptions{Tail: 0, Since: at(1)}, nil},
		{"until before all", runtime.LogOptions{Tail: -1, Until: t0.Add(-time.Second)}, nil},
	}
	for _, tt := range tests {
		got := readAll(t, path, tt.opts)
		if !slices.Equal(texts(got), tt.want) {
			t.Errorf("%s: read %q, want %q", tt.name, texts(got), tt.want)
		}
		for _, l := range got {
			var i int
			fmt.Sscan(string(l.Line), &i)
			if wantStream := runtime.LogStream(i % 2); l.Stream != wantStream || !l.At.Equal(at(i)) {
				t.Errorf("%s: line %s has stream %v at %v, want %v at %v", tt.name, l.Line, l.Stream, l.At, wantStream, at(i))
			}
		}
	}
}

// A container started before Berth kept json-file logs has one plain
// file: its lines are stdout without a time.
func TestReadPlainFile(t *testing.T) {
	long := strings.Repeat("z", 100<<10) // longer than the reader's buffer
	path := filepath.Join(t.TempDir(), "c.log")
	if err := os.WriteFile(path, []byte("one\n"+long+"\n{not json\n\nlast"), 0o600); err != nil {
		t.Fatal(err)
	}
	written := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, written, written); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, path, runtime.LogOptions{Tail: -1})
	if want := []string{"one", long, "{not json", "", "last"}; !slices.Equal(texts(got), want) {
		t.Fatalf("read %.20q, want %.20q", texts(got), want)
	}
	for _, l := range got {
		if l.Stream != runtime.Stdout || !l.At.IsZero() {
			t.Errorf("plain line %.20q: stream %v at %v, want stdout with no time", l.Line, l.Stream, l.At)
		}
	}
	if got := readAll(t, path, runtime.LogOptions{Tail: -1, Since: written.Add(time.Minute)}); len(got) != 0 {
		t.Errorf("since after the file was last written read %d lines, want none", len(got))
	}
	if got := readAll(t, path, runtime.LogOptions{Tail: 2}); !slices.Equal(texts(got), []string{"", "last"}) {
		t.Errorf("tail 2 read %q", texts(got))
	}
	// A container of the old kind restarted by a new agent appends json.
	w, err := NewWriter(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\n")
	f.Close()
	w.Write(Stderr, []byte("new\n"), time.Now())
	w.Close()
	got = readAll(t, path, runtime.LogOptions{Tail: 2})
	if len(got) != 2 || string(got[0].Line) != "last" || string(got[1].Line) != "new" || got[1].Stream != runtime.Stderr {
		t.Errorf("mixed file's last two lines: %q, want last (plain) then new (stderr)", texts(got))
	}
}

func TestTailOffset(t *testing.T) {
	tests := []struct {
		content string
		tail    int64
		want    string
		found   int64
	}{
		{"a\nb\nc\n", 0, "", 0},
		{"a\nb\nc\n", 1, "c\n", 1},
		{"a\nb\nc\n", 2, "b\nc\n", 2},
		{"a\nb\nc\n", 3, "a\nb\nc\n", 3},
		{"a\nb\nc\n", 10, "a\nb\nc\n", 3},
		{"a\nb\nc", 1, "c", 1},
		{"a\n\nc\n", 2, "\nc\n", 2},
		{"", 5, "", 0},
		{strings.Repeat("x", 40000) + "\n" + strings.Repeat("y", 40000) + "\n", 1, strings.Repeat("y", 40000) + "\n", 1},
	}
	for _, tc := range tests {
		off, found, err := tailOffset(strings.NewReader(tc.content), int64(len(tc.content)), tc.tail)
		if err != nil {
			t.Fatalf("tailOffset: %v", err)
		}
		if got := tc.content[off:]; got != tc.want || found != tc.found {
			t.Errorf("tailOffset(%.20q, %d) leaves %.20q having found %d, want %.20q and %d", tc.content, tc.tail, got, found, tc.want, tc.found)
		}
	}
}

// Following keeps up across rotations and stops once the container
// exited and nothing more came.
func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path, Options{MaxSize: 400, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(Stdout, []byte("line 0\n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	exited := make(chan runtime.Exit, 1)
	lines := make(chan runtime.LogLine, 1000)
	done := make(chan error, 1)
	go func() {
		done <- Read(t.Context(), path, runtime.LogOptions{Tail: -1, Follow: true}, exited, func(l runtime.LogLine) error {
			lines <- l
			return nil
		})
	}()
	next := func() string {
		select {
		case l := <-lines:
			return string(l.Line)
		case <-time.After(30 * time.Second):
			t.Fatal("no line within 30s")
			return ""
		}
	}
	if l := next(); l != "line 0" {
		t.Fatalf("first line %q", l)
	}
	// Written in rounds small enough that no round rotates twice, each
	// read before the next: every line must come, in order.
	for i := 1; i <= 60; i++ {
		if err := w.Write(Stdout, fmt.Appendf(nil, "line %d\n", i), time.Now()); err != nil {
			t.Fatal(err)
		}
		if l, want := next(), fmt.Sprintf("line %d", i); l != want {
			t.Fatalf("followed %q, want %q", l, want)
		}
	}
	if _, err := os.Stat(path + ".2"); err != nil {
		t.Fatalf("the test meant to rotate at least twice: %v", err)
	}
	// The last output may come after the exit is seen.
	exited <- runtime.Exit{}
	if err := w.Write(Stderr, []byte("bye\n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if l := next(); l != "bye" {
		t.Fatalf("last line %q, want bye", l)
	}
	if err := <-done; err != nil {
		t.Fatalf("Read: %v", err)
	}
}

// Following with Until stops at the first line past it.
func TestFollowStopsPastUntil(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	until := time.Now().Add(time.Hour)
	w.Write(Stdout, []byte("before\n"), until.Add(-time.Minute))
	w.Write(Stdout, []byte("after\n"), until.Add(time.Minute))
	var got []string
	err = Read(t.Context(), path, runtime.LogOptions{Tail: -1, Until: until}, make(chan runtime.Exit), func(l runtime.LogLine) error {
		got = append(got, string(l.Line))
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"before"}) {
		t.Errorf("Read = %q, %v; want [before] and no error", got, err)
	}
}

func TestWriterDropsAndCountsWhenTheDiskIsFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	w, err := NewWriter("/dev/full", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 3 {
		if err := w.Write(Stdout, []byte("x\n"), time.Now()); err == nil {
			t.Fatal("Write to a full disk succeeded")
		}
	}
	if n := w.Dropped(); n != 3 {
		t.Errorf("Dropped() = %d, want 3", n)
	}
	// Copy goes on reading: the container's pipe never fills.
	if err := Copy(w, Stdout, strings.NewReader("a\nb\n")); err != nil {
		t.Errorf("Copy: %v", err)
	}
	if n := w.Dropped(); n != 5 {
		t.Errorf("Dropped() = %d after two more lines, want 5", n)
	}
}

func TestDroppedLinesAreNoted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.dropped = 2 // as if the disk had been full
	w.Write(Stdout, []byte("back\n"), time.Now())
	w.Close()
	got := readAll(t, path, runtime.LogOptions{Tail: -1})
	if len(got) != 2 || got[0].Stream != runtime.Stderr || !strings.Contains(string(got[0].Line), "2 log lines were dropped") || string(got[1].Line) != "back" {
		t.Errorf("read %q, want a note of 2 dropped lines on stderr, then back", texts(got))
	}
}

func TestDriverCopiesBothStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- drive(t.Context(), DriverArgs(path, Options{MaxSize: 1 << 20, MaxFiles: 2})[DriverArg], outR, errR, func() error {
			close(ready)
			return nil
		})
	}()
	<-ready
	fmt.Fprintln(outW, "to stdout")
	fmt.Fprintln(errW, "to stderr")
	outW.Close()
	errW.Close()
	if err := <-done; err != nil {
		t.Fatalf("drive: %v", err)
	}
	got := readAll(t, path, runtime.LogOptions{Tail: -1})
	slices.SortFunc(got, func(a, b runtime.LogLine) int { return int(a.Stream) - int(b.Stream) })
	if len(got) != 2 || string(got[0].Line) != "to stdout" || got[0].Stream != runtime.Stdout ||
		string(got[1].Line) != "to stderr" || got[1].Stream != runtime.Stderr {
		t.Errorf("read %+v", got)
	}
}

func TestParseDriverArgRefusesBadSettings(t *testing.T) {
	for _, s := range []string{"path=rel.log&max-size=1&max-file=1", "path=/a.log&max-size=x&max-file=1", "path=/a.log&max-size=1"} {
		if _, _, err := parseDriverArg(s); err == nil {
			t.Errorf("parseDriverArg(%q) succeeded", s)
		}
	}
	path, opts, err := parseDriverArg(DriverArgs("/x/c.log", Options{MaxSize: 5, MaxFiles: 2})[DriverArg])
	if err != nil || path != "/x/c.log" || opts != (Options{MaxSize: 5, MaxFiles: 2}) {
		t.Errorf("round trip: %q %+v %v", path, opts, err)
	}
}
