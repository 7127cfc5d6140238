package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a process the suite started: a server, agent, etcd member or
// containerd. It can be killed and started again with the same command.
type proc struct {
	t    *testing.T
	name string
	argv []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// lockedWriter serialises the process's output into its buffer.
type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// spawn starts argv in network namespace netns ("" for the test's own)
// and stops it when the test ends. Its output is shown if the test failed.
func spawn(t *testing.T, name, netns string, argv ...string) *proc {
	t.Helper()
	if netns != "" {
		// nsenter execs argv in place, so the pid is argv's own.
		argv = append([]string{"nsenter", "--net=" + netnsPath(netns), "--"}, argv...)
	}
	p := &proc{t: t, name: name, argv: argv}
	p.start()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, tail(p.output(), 60))
		}
	})
	return p
}

// start (re)starts the process; the output of an earlier run is dropped.
func (p *proc) start() {
	p.t.Helper()
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
	cmd.Stdout, cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.mu.Lock()
	p.out = &bytes.Buffer{}
	p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// pid is the process id of the current run.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// signal sends sig (SIGSTOP, SIGCONT) to the running process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// stop ends the process: SIGCONT (it may be stopped), SIGTERM, then
// SIGKILL if it lingers.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

// waitOutput waits until the current run printed want.
func (p *proc) waitOutput(want string, timeout time.Duration) {
	p.t.Helper()
	eventually(p.t, timeout, func() (bool, string) {
		if !p.running() {
			p.t.Fatalf("%s exited before printing %q:\n%s", p.name, want, tail(p.output(), 40))
		}
		return strings.Contains(p.output(), want), fmt.Sprintf("%s has not printed %q", p.name, want)
	})
}

// eventually polls cond until it holds, or fails the test at the deadline.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	if why, ok := poll(timeout, cond); !ok {
		t.Fatalf("after %s: %s", timeout, why)
	}
}

// poll polls cond until it holds or the deadline passes, and returns the
// last reason it gave.
func poll(timeout time.Duration, cond func() (bool, string)) (string, bool) {
	deadline := time.Now().Add(timeout)
	wait := 20 * time.Millisecond
	for {
		ok, why := cond()
		if ok {
			return "", true
		}
		if time.Now().After(deadline) {
			return why, false
		}
		time.Sleep(wait) // a poll interval, not a wait for state
		wait = min(wait*2, 500*time.Millisecond)
	}
}

// runCmd runs a short command (ip, mount, curl) and returns its output.
func runCmd(ctx context.Context, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// must runs a short command or fails the test.
func must(t *testing.T, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := runCmd(ctx, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
