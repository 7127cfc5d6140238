package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const (
	starting  = berthv1.Health_HEALTH_STARTING
	healthy   = berthv1.Health_HEALTH_HEALTHY
	unhealthy = berthv1.Health_HEALTH_UNHEALTHY
)

// report is one call of Monitor's report, at fake time since the start.
type report struct {
	health berthv1.Health
	at     time.Duration
	detail string
}

// monitorRun is one Monitor on a fake clock, stopped when the test ends.
type monitorRun struct {
	clock   *fakeClock
	start   time.Time
	reports chan report
	stop    func()
}

func startMonitor(t *testing.T, cfg Config, target Target) *monitorRun {
	t.Helper()
	clock := newFakeClock()
	run := &monitorRun{clock: clock, start: clock.Now(), reports: make(chan report, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		MonitorClock(ctx, cfg, target, clock, func(h berthv1.Health, detail string) {
			run.reports <- report{h, clock.Now().Sub(run.start), detail}
		})
	}()
	run.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		close(run.reports)
	})
	t.Cleanup(run.stop)
	return run
}

// next returns the next report, failing the test if none comes.
func (r *monitorRun) next(t *testing.T) report {
	t.Helper()
	select {
	case rep := <-r.reports:
		return rep
	case <-time.After(10 * time.Second):
		t.Fatalf("no health report")
		return report{}
	}
}

// hang as a probe's exit code makes the probe run until it is cancelled.
const hang = -1

// step is one probe: the wait before it and the exit code it gives.
type step struct {
	wait time.Duration
	code int
}

// scriptedExec answers probes with codes in order, counting them.
type scriptedExec struct {
	mu    sync.Mutex
	codes []int
	calls int
	cmds  [][]string
}

func (s *scriptedExec) exec(ctx context.Context, cmd []string) (int, []byte, error) {
	s.mu.Lock()
	code := s.codes[s.calls]
	s.calls++
	s.cmds = append(s.cmds, cmd)
	s.mu.Unlock()
	if code == hang {
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	return code, fmt.Appendf(nil, "probe says %d\n", code), nil
}

func (s *scriptedExec) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestMonitorExec(t *testing.T) {
	const (
		interval      = 10 * time.Second
		timeout       = 3 * time.Second
		startInterval = 2 * time.Second
		sec           = time.Second
	)
	base := Config{Test: []string{"CMD", "check"}, Interval: interval, Timeout: timeout, StartInterval: startInterval, Retries: 3}
	withStart := base
	withStart.StartPeriod = 5 * time.Second

	tests := []struct {
		name  string
		cfg   Config
		steps []step
		want  []report
	}{
		{
			name:  "first success is healthy",
			cfg:   base,
			steps: []step{{interval, 0}, {interval, 0}},
			want:  []report{{starting, 0, ""}, {healthy, 10 * sec, "probe says 0"}},
		},
		{
			name:  "retries reached once",
			cfg:   base,
			steps: []step{{interval, 1}, {interval, 1}, {interval, 1}, {interval, 1}, {interval, 2}},
			want:  []report{{starting, 0, ""}, {unhealthy, 30 * sec, `health check ["check"] exited with code 1: probe says 1`}},
		},
		{
			name:  "a success resets the streak",
			cfg:   base,
			steps: []step{{interval, 1}, {interval, 1}, {interval, 0}, {interval, 1}, {interval, 1}},
			want:  []report{{starting, 0, ""}, {healthy, 30 * sec, "probe says 0"}},
		},
		{
			name: "recovery",
			cfg:  base,
			steps: []step{
				{interval, 1}, {interval, 1}, {interval, 1}, // unhealthy
				{interval, 0},                               // healthy
				{interval, 1}, {interval, 1}, {interval, 1}, // unhealthy again
			},
			want: []report{
				{starting, 0, ""},
				{unhealthy, 30 * sec, `health check ["check"] exited with code 1: probe says 1`},
				{healthy, 40 * sec, "probe says 0"},
				{unhealthy, 70 * sec, `health check ["check"] exited with code 1: probe says 1`},
			},
		},
		{
			// Probes at 2s and 4s are in the start period and do not count;
			// the one at 6s is the first failure, 16s and 26s the next.
			name:  "start period ignores failures",
			cfg:   withStart,
			steps: []step{{startInterval, 1}, {startInterval, 1}, {startInterval, 1}, {interval, 1}, {interval, 1}},
			want:  []report{{starting, 0, ""}, {unhealthy, 26 * sec, `health check ["check"] exited with code 1: probe says 1`}},
		},
		{
			name:  "success during the start period",
			cfg:   withStart,
			steps: []step{{startInterval, 1}, {startInterval, 0}, {interval, 0}},
			want:  []report{{starting, 0, ""}, {healthy, 4 * sec, "probe says 0"}},
		},
		{
			name:  "timeouts fail",
			cfg:   base,
			steps: []step{{interval, hang}, {interval, hang}, {interval, hang}},
			want:  []report{{starting, 0, ""}, {unhealthy, 39 * sec, "health check timed out after 3s"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			script := &scriptedExec{codes: make([]int, 0, len(tc.steps))}
			for _, s := range tc.steps {
				script.codes = append(script.codes, s.code)
			}
			run := startMonitor(t, tc.cfg, Target{Exec: script.exec})
			for _, s := range tc.steps {
				run.clock.fire(t, s.wait)
				if s.code == hang {
					run.clock.fire(t, tc.cfg.Timeout)
				}
			}
			// Idle again: the last probe has been judged.
			waitFor(t, "the last probe to be judged", func() bool {
				p := run.clock.pending()
				return script.count() == len(tc.steps) && len(p) == 1 && p[0] != tc.cfg.Timeout
			})
			run.stop()
			var got []report
			for r := range run.reports {
				got = append(got, r)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("reports:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestMonitorCmdShell(t *testing.T) {
	cfg := Config{Test: []string{"CMD-SHELL", "wget -q localhost || exit 1"}, Interval: time.Second, Timeout: time.Minute, Retries: 1}
	script := &scriptedExec{codes: []int{0}}
	run := startMonitor(t, cfg, Target{Exec: script.exec})
	if r := run.next(t); r.health != starting {
		t.Fatalf("first report = %+v, want starting", r)
	}
	run.clock.fire(t, time.Second)
	if r := run.next(t); r.health != healthy {
		t.Fatalf("report = %+v, want healthy", r)
	}
	want := [][]string{{"/bin/sh", "-c", "wget -q localhost || exit 1"}}
	script.mu.Lock()
	defer script.mu.Unlock()
	if !reflect.DeepEqual(script.cmds, want) {
		t.Errorf("exec'd %q, want %q", script.cmds, want)
	}
}

func TestMonitorExecError(t *testing.T) {
	cfg := Config{Test: []string{"CMD", "check"}, Interval: time.Second, Timeout: time.Minute, Retries: 1}
	exec := func(ctx context.Context, cmd []string) (int, []byte, error) {
		return 0, nil, fmt.Errorf("container is gone")
	}
	run := startMonitor(t, cfg, Target{Exec: exec})
	run.next(t)
	run.clock.fire(t, time.Second)
	if r := run.next(t); r.health != unhealthy || !strings.Contains(r.detail, "container is gone") {
		t.Errorf("report = %+v, want unhealthy with the exec error", r)
	}
}

func TestMonitorHTTP(t *testing.T) {
	var status atomic.Int32
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		if s := int(status.Load()); s >= 300 && s < 400 {
			http.Redirect(w, r, "/elsewhere", s)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	host, port := splitAddr(t, srv.Listener.Addr().String())

	cfg := Config{HTTPPort: port, HTTPPath: "/healthz", Interval: time.Second, Timeout: time.Minute, Retries: 1}
	run := startMonitor(t, cfg, Target{Address: host})
	run.next(t)
	tests := []struct {
		status int
		want   berthv1.Health
	}{
		{http.StatusOK, healthy},
		{http.StatusInternalServerError, unhealthy},
		{http.StatusFound, healthy},
		{http.StatusNotFound, unhealthy},
		{http.StatusNoContent, healthy},
	}
	for _, tc := range tests {
		status.Store(int32(tc.status))
		run.clock.fire(t, time.Second)
		if r := run.next(t); r.health != tc.want || !strings.Contains(r.detail, strconv.Itoa(tc.status)) {
			t.Errorf("status %d: report %+v, want %v with the status in the detail", tc.status, r, tc.want)
		}
	}
	if got := path.Load(); got != "/healthz" {
		t.Errorf("probed path %v, want /healthz", got)
	}
}

func TestMonitorTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	host, port := splitAddr(t, ln.Addr().String())

	cfg := Config{TCPPort: port, Interval: time.Second, Timeout: time.Minute, Retries: 1}
	run := startMonitor(t, cfg, Target{Address: host})
	run.next(t)
	run.clock.fire(t, time.Second)
	if r := run.next(t); r.health != healthy {
		t.Fatalf("report with a listener = %+v, want healthy", r)
	}
	ln.Close()
	run.clock.fire(t, time.Second)
	if r := run.next(t); r.health != unhealthy || !strings.Contains(r.detail, "refused") {
		t.Errorf("report without a listener = %+v, want unhealthy, connection refused", r)
	}
}

func splitAddr(t *testing.T, addr string) (string, uint32) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return host, uint32(port)
}

func TestMonitorWallClock(t *testing.T) {
	cfg := Config{Test: []string{"CMD", "check"}, Interval: time.Millisecond, Timeout: time.Minute, Retries: 1}
	exec := func(ctx context.Context, cmd []string) (int, []byte, error) { return 0, []byte("ok"), nil }
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan berthv1.Health, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Monitor(ctx, cfg, Target{Exec: exec}, nil, func(h berthv1.Health, detail string) { reports <- h })
	}()
	defer func() { cancel(); <-done }()
	for _, want := range []berthv1.Health{starting, healthy} {
		select {
		case got := <-reports:
			if got != want {
				t.Fatalf("report %v, want %v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v report", want)
		}
	}
}
