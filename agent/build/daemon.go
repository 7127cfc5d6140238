package build

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Backoff bounds between restarts of a buildkitd that died. A daemon that
// ran longer than healthyRun starts over at the shortest delay.
const (
	minRestartDelay = 500 * time.Millisecond
	maxRestartDelay = 30 * time.Second
	healthyRun      = time.Minute
	// stopGrace is how long buildkitd has to finish its builds and release
	// its leases after SIGTERM before it is killed.
	stopGrace = 10 * time.Second
)

// daemon supervises the buildkitd child process of one agent: it starts
// it, restarts it with backoff when it dies, and stops it with the agent.
type daemon struct {
	binary string
	args   []string
	dir    string // state root; the log is written here
	log    *slog.Logger

	mu sync.Mutex
	// exited reports the last exit of the process (or a failed start), so
	// a build that waits for the socket can tell why it never came up.
	exited  error
	exits   int
	runs    int
	pid     int // of the running process, 0 when none
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// socketPath is where a daemon started for state root dir listens.
func socketPath(dir string) string { return filepath.Join(dir, "buildkitd.sock") }

// logPath is where a daemon started for state root dir logs.
func logPath(dir string) string { return filepath.Join(dir, "buildkitd.log") }

// daemonArgs are buildkitd's flags for a containerd worker in namespace ns
// of the containerd at containerdAddr, with its state under dir.
func daemonArgs(dir, containerdAddr, ns string) []string {
	return []string{
		"--root", dir,
		"--addr", "unix://" + socketPath(dir),
		// Its own trace socket: the default path is shared by every
		// buildkitd on the machine, and one would unlink another's.
		"--otel-socket-path", filepath.Join(dir, "otel-grpc.sock"),
		"--oci-worker=false",
		"--containerd-worker=true",
		"--containerd-worker-addr", containerdAddr,
		"--containerd-worker-namespace", ns,
		// The snapshotter the agent's runtime runs containers with, so an
		// unpacked build result runs without a second unpack.
		"--containerd-worker-snapshotter", "overlayfs",
		// RUN steps share the node's network, as BuildKit does by default
		// where no CNI configuration is set up for it; a bridge of its own
		// would need addresses that Berth's container subnets do not own.
		"--containerd-worker-net", "host",
	}
}

// start runs the supervisor once; later calls do nothing. It fails when
// the daemon was stopped or the binary cannot be found.
func (d *daemon) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return fmt.Errorf("%w: the agent is stopping", ErrUnavailable)
	}
	if d.done != nil {
		return nil
	}
	path, err := exec.LookPath(d.binary)
	if err != nil {
		return fmt.Errorf("%w: buildkitd not found (%v): run `make setup` (hack/setup-host.sh builds it), or pass --buildkit-addr to use a running one", ErrUnavailable, err)
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("%w: buildkitd state directory: %v", ErrUnavailable, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go d.supervise(ctx, path)
	return nil
}

// status reports how many times the process ended (or failed to start)
// and why it last did.
func (d *daemon) status() (exits int, exited error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exits, d.exited
}

// supervise runs buildkitd until ctx ends, restarting it with backoff.
func (d *daemon) supervise(ctx context.Context, path string) {
	defer close(d.done)
	delay := minRestartDelay
	for {
		began := time.Now()
		err := d.runOnce(ctx, path)
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		d.exited, d.exits, d.pid = err, d.exits+1, 0
		d.mu.Unlock()
		if time.Since(began) > healthyRun {
			delay = minRestartDelay
		}
		d.log.Warn("buildkitd exited; restarting", "err", err, "in", delay, "log", logPath(d.dir))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRestartDelay)
	}
}

// runOnce runs buildkitd until it exits or ctx ends, when it is asked to
// stop and killed if it takes longer than stopGrace.
func (d *daemon) runOnce(ctx context.Context, path string) error {
	logFile, err := os.OpenFile(logPath(d.dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open buildkitd log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(path, d.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A group of its own: a Ctrl-C meant for the agent reaches
		// buildkitd only through the agent's orderly stop.
		Setpgid: true,
		// Dies with the agent even when the agent is killed outright.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", path, err)
	}
	d.mu.Lock()
	d.runs, d.pid = d.runs+1, cmd.Process.Pid
	d.mu.Unlock()
	d.log.Info("buildkitd started", "pid", cmd.Process.Pid, "addr", "unix://"+socketPath(d.dir), "log", logPath(d.dir))
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		return fmt.Errorf("buildkitd (pid %d) exited: %w", cmd.Process.Pid, err)
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-waited:
	case <-time.After(stopGrace):
		d.log.Warn("buildkitd did not stop in time; killing it", "pid", cmd.Process.Pid)
		_ = cmd.Process.Kill()
		<-waited
	}
	return nil
}

// stop stops the process and waits for the supervisor to return.
func (d *daemon) stop() {
	d.mu.Lock()
	d.stopped = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// logTail is the end of the daemon's log, for errors that say why it did
// not come up.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(logPath(d.dir))
	if err != nil {
		return ""
	}
	const keep = 1024
	if len(b) > keep {
		b = b[len(b)-keep:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(bytes.TrimSpace(b))
}
