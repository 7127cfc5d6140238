package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const streamsCompose = `
services:
  both:
    image: localhost/busybox:latest
    command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo out $$i; echo err $$i >&2; sleep 0.2; done"]
  other:
    image: localhost/busybox:latest
    command: ["sh", "-c", "echo other says hi; sleep 3600"]
`

// stampedLine is a line of berth logs -t: its time, then its text.
var stampedLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT[0-9:.]+Z) (.*)$`)

// TestLogsStreamsTimesUntilAndApps reads a service that writes to both
// streams: stdout comes on stdout and stderr on stderr, each line with
// the time it was written; --until cuts by those times; a whole app
// interleaves its services; --tail abc is a usage error.
func TestLogsStreamsTimesUntilAndApps(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", streamsCompose), "-p", "lgs")
	c.waitRunning("lgs/both", 1, 60*time.Second)
	c.waitRunning("lgs/other", 1, 60*time.Second)

	var stdout, stderr string
	eventually(t, 60*time.Second, func() (bool, string) {
		var err error
		stdout, stderr, err = c.berth("logs", "lgs/both", "-t")
		return err == nil && strings.Count(stdout, "\n") >= 6, fmt.Sprintf("want 6 lines of lgs/both: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
	})
	outLines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	var times []time.Time
	for i, l := range outLines {
		m := stampedLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("stdout line %q has no time", l)
		}
		if want := "out " + strconv.Itoa(i+1); m[2] != want {
			t.Fatalf("stdout line %d is %q, want %q: stdout holds stdout only, in order", i, m[2], want)
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && at.Before(times[i-1]) {
			t.Errorf("line %d written at %v, before the line above it (%v)", i, at, times[i-1])
		}
		times = append(times, at)
	}
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if m := stampedLine.FindStringSubmatch(l); m == nil || !strings.HasPrefix(m[2], "err ") {
			t.Fatalf("stderr line %q: want a time and err N\nstderr: %s", l, stderr)
		}
	}

	// --until the third line's time: the first three, nothing later.
	until := times[2].Format(time.RFC3339Nano)
	cut := c.mustBerth("logs", "lgs/both", "--until", until)
	if cut != "out 1\nout 2\nout 3\n" {
		t.Errorf("logs --until %s printed %q, want out 1 to 3", until, cut)
	}
	// --since, --until and --tail together: from halfway before round 4
	// to halfway after round 6 (rounds are 0.2 s apart; the two lines of
	// one round are written together, and the driver reads the two
	// streams apart, so either may come first), the last two lines of
	// both streams are round 6's.
	since := times[3].Add(-100 * time.Millisecond).Format(time.RFC3339Nano)
	until = times[5].Add(100 * time.Millisecond).Format(time.RFC3339Nano)
	got, gotErr, err := c.berth("logs", "lgs/both", "--since", since, "--until", until, "--tail", "2")
	if err != nil || got != "out 6\n" || gotErr != "err 6\n" {
		t.Errorf("logs --since --until --tail 2: %v, stdout %q, stderr %q; want out 6 and err 6", err, got, gotErr)
	}

	// The whole app: each service's lines, prefixed with their task.
	eventually(t, 30*time.Second, func() (bool, string) {
		out, errOut, err := c.berth("logs", "lgs", "--tail", "3")
		return err == nil && strings.Contains(out, "other.1@alpha | other says hi\n") && strings.Contains(out, "both.1@alpha | out ") &&
				strings.Contains(errOut, "both.1@alpha | err ") && !strings.Contains(out, "| err "),
			fmt.Sprintf("logs lgs: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	})

	_, errOut, err := c.berth("logs", "lgs/both", "--tail", "abc")
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(errOut, `--tail "abc"`) {
		t.Errorf("logs --tail abc: %v, stderr %q; want exit code 2 naming --tail", err, errOut)
	}
	c.mustBerth("delete", "lgs")
}

const rotateCompose = `
services:
  chatty:
    image: localhost/busybox:latest
    command: ["sh", "-c", "i=0; while [ $$i -lt 3000 ]; do i=$$((i+1)); echo line $$i of the chatty service; done; echo all written; sleep 3600"]
    logging:
      driver: json-file
      options:
        max-size: 1k
        max-file: "2"
`

// TestLogsRotate runs a service whose logs are capped at two files of 1k
// that writes far more: only two files stay on the node, and berth logs
// shows the newest lines.
func TestLogsRotate(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", rotateCompose), "-p", "rot")
	tk := c.waitRunning("rot/chatty", 1, 60*time.Second)[0]

	var out string
	eventually(t, 60*time.Second, func() (bool, string) {
		out = c.mustBerth("logs", "rot/chatty")
		return strings.HasSuffix(out, "all written\n"), "want the last line, have:\n" + out
	})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || strings.HasPrefix(out, "line 1 ") || !strings.Contains(out, "line 3000 of the chatty service\n") {
		t.Errorf("logs of a rotated service: want the newest lines only, have %d lines:\n%s", len(lines), out)
	}
	for i := 1; i < len(lines)-1; i++ {
		var a, b int
		fmt.Sscanf(lines[i-1], "line %d", &a)
		fmt.Sscanf(lines[i], "line %d", &b)
		if b != a+1 {
			t.Fatalf("lines %q then %q: the files are not read in order", lines[i-1], lines[i])
		}
	}
	files, err := filepath.Glob(filepath.Join(c.dir, "agent-alpha", "runtime", "logs", tk.ID+".log*"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if len(files) != 2 || filepath.Base(files[0]) != tk.ID+".log" || filepath.Base(files[1]) != tk.ID+".log.1" {
		t.Fatalf("log files of task %s: %q, want <id>.log and <id>.log.1", tk.ID, files)
	}
	for _, f := range files {
		if info, err := os.Stat(f); err != nil || info.Size() > 1000 {
			t.Errorf("%s: %v, size %d; want at most 1000 bytes", f, err, info.Size())
		}
	}
	if got := c.mustBerth("logs", "rot/chatty", "--tail", "2"); got != "line 3000 of the chatty service\nall written\n" {
		t.Errorf("logs --tail 2 = %q", got)
	}
	c.mustBerth("delete", "rot")
}

const countCompose = `
services:
  counter:
    image: localhost/busybox:latest
    command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo count $$i; sleep 0.1; done"]
`

var countRe = regexp.MustCompile(`count (\d+)`)

// lastCount is the highest count in s.
func lastCount(s string) int {
	n := 0
	for _, m := range countRe.FindAllStringSubmatch(s, -1) {
		if v, _ := strconv.Atoi(m[1]); v > n {
			n = v
		}
	}
	return n
}

// TestLogsFlowAcrossAgentRestart stops the agent while its container
// writes: the log driver, a child of the shim, keeps writing, and the
// lines written while the agent was down are read once it is back.
func TestLogsFlowAcrossAgentRestart(t *testing.T) {
	c := newCluster(t)
	agent := c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", countCompose), "-p", "cnt")
	tk := c.waitRunning("cnt/counter", 1, 60*time.Second)[0]
	eventually(t, 30*time.Second, func() (bool, string) {
		out := c.mustBerth("logs", "cnt/counter")
		return lastCount(out) >= 3, "want a few counts:\n" + out
	})

	logFile := filepath.Join(c.dir, "agent-alpha", "runtime", "logs", tk.ID+".log")
	agent.stop()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	atStop := lastCount(string(b))
	// The container keeps writing while no agent runs.
	eventually(t, 30*time.Second, func() (bool, string) {
		b, err := os.ReadFile(logFile)
		return err == nil && lastCount(string(b)) >= atStop+10, fmt.Sprintf("want count %d in %s with the agent down: %v", atStop+10, logFile, err)
	})

	c.startAgent("alpha")
	c.waitRunning("cnt/counter", 1, 60*time.Second)
	out := c.mustBerth("logs", "cnt/counter")
	counts := countRe.FindAllStringSubmatch(out, -1)
	for i, m := range counts {
		if m[1] != strconv.Itoa(i+1) {
			t.Fatalf("line %d is count %s, want %d: lines were lost across the restart:\n%s", i, m[1], i+1, out)
		}
	}
	if len(counts) < atStop+10 {
		t.Errorf("logs after the restart end at count %d, want at least %d (written while the agent was down)", len(counts), atStop+10)
	}
	c.mustBerth("delete", "cnt")
}
