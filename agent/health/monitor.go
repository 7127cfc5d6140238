package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Target is the container a Monitor probes.
type Target struct {
	// Exec runs cmd in the container; it must return soon after ctx ends.
	Exec func(ctx context.Context, cmd []string) (exitCode int, output []byte, err error)
	// Address is the container's IP, for HTTP and TCP probes; empty (a
	// container on the host network) probes 127.0.0.1.
	Address string
}

// Clock is the time a Monitor waits on; tests drive a fake one.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer fires once on C unless stopped first.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// realClock is the wall clock, with Now replaceable.
type realClock struct{ now func() time.Time }

func (c realClock) Now() time.Time { return c.now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Monitor runs the check until ctx ends and calls report on every change of
// health: first Starting, then Healthy or Unhealthy with the last probe's
// output or error as detail. now, if not nil, replaces time.Now.
//
// Docker's semantics: probes every Interval (StartInterval while starting
// within StartPeriod), the first one an interval after Monitor starts; a
// probe longer than Timeout fails; failures during StartPeriod do not
// count until a probe has succeeded; Retries consecutive failures make the
// container Unhealthy; one success makes it Healthy.
func Monitor(ctx context.Context, cfg Config, t Target, now func() time.Time, report func(h berthv1.Health, detail string)) {
	if now == nil {
		now = time.Now
	}
	MonitorClock(ctx, cfg, t, realClock{now: now}, report)
}

// MonitorClock is Monitor with its waiting done on clock.
func MonitorClock(ctx context.Context, cfg Config, t Target, clock Clock, report func(h berthv1.Health, detail string)) {
	p := newProber(cfg, t)
	defer p.close()

	started := clock.Now()
	status := berthv1.Health_HEALTH_STARTING
	report(status, "")
	failures := 0
	for {
		wait := cfg.Interval
		if status == berthv1.Health_HEALTH_STARTING && clock.Now().Sub(started) < cfg.StartPeriod {
			wait = cfg.StartInterval
		}
		if !sleep(ctx, clock, wait) {
			return
		}
		probeStart := clock.Now()
		detail, err := runProbe(ctx, clock, cfg.Timeout, p)
		if ctx.Err() != nil {
			return // the probe was cut short by the end, not by the container
		}
		next := status
		if err == nil {
			failures = 0
			next = berthv1.Health_HEALTH_HEALTHY
		} else {
			detail = err.Error()
			// A container that has never passed gets its start period:
			// failures then do not count.
			if status != berthv1.Health_HEALTH_STARTING || probeStart.Sub(started) >= cfg.StartPeriod {
				failures++
				if failures >= cfg.Retries {
					next = berthv1.Health_HEALTH_UNHEALTHY
				}
			}
		}
		if next != status {
			status = next
			report(status, detail)
		}
	}
}

// sleep waits d on clock; false when ctx ended first.
func sleep(ctx context.Context, clock Clock, d time.Duration) bool {
	timer := clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C():
		return true
	}
}

// probeResult is what one probe saw: its output and, if it failed, why.
type probeResult struct {
	detail string
	err    error
}

// runProbe runs one probe, cancelling it after timeout on clock; it always
// waits for the probe to end, so no probe outlives Monitor.
func runProbe(ctx context.Context, clock Clock, timeout time.Duration, p *prober) (string, error) {
	probeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan probeResult, 1)
	go func() {
		detail, err := p.probe(probeCtx)
		done <- probeResult{detail, err}
	}()
	timer := clock.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.detail, r.err
	case <-timer.C():
		cancel()
		r := <-done
		return r.detail, fmt.Errorf("health check timed out after %v", timeout)
	case <-ctx.Done():
		cancel()
		r := <-done
		return r.detail, ctx.Err()
	}
}

// prober runs the configured kind of probe against one target.
type prober struct {
	cfg    Config
	target Target
	argv   []string
	client *http.Client
}

func newProber(cfg Config, t Target) *prober {
	p := &prober{cfg: cfg, target: t, argv: cfg.argv()}
	if cfg.HTTPPort != 0 {
		p.client = &http.Client{
			// No connection is reused between probes, so none is left
			// open when Monitor returns.
			Transport: &http.Transport{DisableKeepAlives: true},
			// A redirect answers the probe: 3xx is healthy.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return p
}

func (p *prober) close() {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
}

// address is host:port of the target's port.
func (p *prober) address(port uint32) string {
	host := p.target.Address
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// probe runs the check once: nil error when it passed.
func (p *prober) probe(ctx context.Context) (string, error) {
	switch {
	case p.cfg.HTTPPort != 0:
		return p.probeHTTP(ctx)
	case p.cfg.TCPPort != 0:
		return p.probeTCP(ctx)
	default:
		return p.probeExec(ctx)
	}
}

func (p *prober) probeExec(ctx context.Context) (string, error) {
	if p.target.Exec == nil {
		return "", errors.New("health check: no way to run a command in this container")
	}
	code, out, err := p.target.Exec(ctx, p.argv)
	detail := strings.TrimSpace(string(out))
	if err != nil {
		return detail, fmt.Errorf("health check %q: %w", p.argv, err)
	}
	if code != 0 {
		if detail == "" {
			return "", fmt.Errorf("health check %q exited with code %d", p.argv, code)
		}
		return detail, fmt.Errorf("health check %q exited with code %d: %s", p.argv, code, detail)
	}
	return detail, nil
}

func (p *prober) probeHTTP(ctx context.Context) (string, error) {
	url := "http://" + p.address(p.cfg.HTTPPort) + p.cfg.HTTPPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("health check GET %s: %w", url, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("health check: %w", err)
	}
	resp.Body.Close()
	detail := fmt.Sprintf("GET %s: %s", url, resp.Status)
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return detail, fmt.Errorf("health check %s", detail)
	}
	return detail, nil
}

func (p *prober) probeTCP(ctx context.Context) (string, error) {
	addr := p.address(p.cfg.TCPPort)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("health check: %w", err)
	}
	conn.Close()
	return "connected to " + addr, nil
}
