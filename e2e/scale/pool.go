package scale

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthproject/berth/agent"
)

// poolEnv carries a pool's spec (JSON) to the child process.
const poolEnv = "BERTH_SCALE_POOL"

// poolSpec is what one pool process runs.
type poolSpec struct {
	Server, Token string
	// Names are the pool's nodes; each keeps its data in DataDir/NAME.
	Names        []string
	DataDir      string
	Concurrency  int
	StartLatency time.Duration
	FailureRate  float64
	// CPUProfile, when set, is written from start until the pool stops.
	CPUProfile string
	// MemoryLimit is the pool's soft memory limit (runtime/debug); 0
	// for none.
	MemoryLimit int64
	// HeapProfile, when set, is written as the pool stops, before its
	// agents do.
	HeapProfile string
}

// MaybeRunPool runs a pool of simulated agents and exits, when this
// process was started as one (BERTH_SCALE_POOL is set); otherwise it
// returns at once. Call it first in main and TestMain.
func MaybeRunPool() {
	raw := os.Getenv(poolEnv)
	if raw == "" {
		return
	}
	var spec poolSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "scale pool: %s: %v\n", poolEnv, err)
		os.Exit(2)
	}
	if err := runPool(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stdout, "error %v\n", err)
		fmt.Fprintf(os.Stderr, "scale pool: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runPool starts spec's agents, a few at a time, writes "ready NAME ID"
// for each and "pool-ready" once all are up, and stops them when stdin
// closes or a signal comes.
func runPool(spec poolSpec, stdin io.Reader, stdout io.Writer) error {
	raiseFileLimit()
	// Hundreds of agents in one process allocate a lot between them; the
	// collector runs less often, at the cost of memory the machine has.
	debug.SetGCPercent(200)
	// A GOMEMLIMIT given to the harness is meant for the server; the
	// pools share what the machine has.
	debug.SetMemoryLimit(cmp.Or(spec.MemoryLimit, math.MaxInt64))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return fmt.Errorf("CPU profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("CPU profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The parent closes stdin to stop the pool, or dies.
		io.Copy(io.Discard, stdin)
		stop()
	}()

	var (
		mu     sync.Mutex // guards agents and writes to stdout
		agents []*agent.Agent
		wg     sync.WaitGroup
		errc   = make(chan error, len(spec.Names))
		sem    = make(chan struct{}, max(1, spec.Concurrency))
	)
	defer func() {
		mu.Lock()
		all := agents
		mu.Unlock()
		var sw sync.WaitGroup
		for _, a := range all {
			sw.Go(a.Stop)
		}
		sw.Wait()
	}()
	for _, name := range spec.Names {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			a, err := agent.Start(ctx, agent.Config{
				Server:           spec.Server,
				Token:            spec.Token,
				Name:             name,
				DataDir:          filepath.Join(spec.DataDir, name),
				Listen:           "127.0.0.1:0",
				GossipAddr:       "127.0.0.1:0",
				MilliCPUs:        64_000,
				MemoryBytes:      256 << 30,
				Runtime:          "fake",
				FakeStartLatency: spec.StartLatency,
				FakeFailureRate:  spec.FailureRate,
				Log:              log.With("node", name),
			})
			if err != nil {
				errc <- fmt.Errorf("node %s: %w", name, err)
				return
			}
			mu.Lock()
			agents = append(agents, a)
			fmt.Fprintf(stdout, "ready %s %s\n", name, a.NodeID())
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	mu.Lock()
	fmt.Fprintln(stdout, "pool-ready")
	mu.Unlock()
	<-ctx.Done()
	if spec.HeapProfile != "" {
		if err := writeHeapProfile(spec.HeapProfile); err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// raiseFileLimit lifts the soft limit on open files to the hard one: a
// pool holds a few sockets per node, a server a few per node too.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// pool is a running pool process, seen from the harness.
type pool struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	logf  *os.File
	mu    sync.Mutex
	// nodes maps the pool's node names to their IDs, as they get ready;
	// guarded by mu.
	nodes map[string]string
	ready chan struct{} // closed on "pool-ready"
	fail  chan string   // an "error" line, or the end of output without ready
	done  chan struct{} // closed when the process has exited
}

// startPool starts a pool process running spec; its stderr goes to
// logPath.
func startPool(name string, spec poolSpec, logPath string) (*pool, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("pool %s: finding this program to start it again: %w", name, err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	p := &pool{name: name, logf: logf, nodes: map[string]string{},
		ready: make(chan struct{}), fail: make(chan string, 1), done: make(chan struct{})}
	p.cmd = exec.Command(self)
	p.cmd.Env = append(os.Environ(), poolEnv+"="+string(raw))
	p.cmd.Stderr = logf
	// A pool dies with the harness, whatever ends it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		logf.Close()
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	go p.read(out)
	return p, nil
}

func (p *pool) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	failed := false
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "ready":
			name, id, _ := strings.Cut(rest, " ")
			p.mu.Lock()
			p.nodes[name] = id
			p.mu.Unlock()
		case "pool-ready":
			close(p.ready)
		case "error":
			failed = true
			p.fail <- rest
		}
	}
	p.cmd.Wait()
	p.logf.Close()
	if !failed {
		select {
		case <-p.ready:
		default:
			p.fail <- "exited before its nodes were ready"
		}
	}
	close(p.done)
}

// waitReady waits until every node of the pool has a session.
func (p *pool) waitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case why := <-p.fail:
		return fmt.Errorf("pool %s: %s; see %s", p.name, why, p.logf.Name())
	case <-ctx.Done():
		return fmt.Errorf("pool %s: %w", p.name, ctx.Err())
	}
}

// nodeIDs returns the IDs of the pool's ready nodes.
func (p *pool) nodeIDs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.nodes))
	for n, id := range p.nodes {
		out[id] = n
	}
	return out
}

// freeze stops the pool with SIGSTOP, as a machine dies: its sessions
// stay open but go silent (a killed process's kernel would close them,
// which tells the control plane the machine is up and its agents
// restart). Only kill ends it afterwards.
func (p *pool) freeze() {
	p.cmd.Process.Signal(syscall.SIGSTOP)
}

// kill ends the pool with SIGKILL and waits for it.
func (p *pool) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// stop asks the pool to stop its agents, and kills it if it takes longer
// than grace.
func (p *pool) stop(grace time.Duration) {
	p.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill()
	}
}

// cpu is the CPU time the pool used, once it has exited.
func (p *pool) cpu() time.Duration {
	st := p.cmd.ProcessState
	if st == nil {
		return 0
	}
	return st.UserTime() + st.SystemTime()
}
