package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// CheckTimeout is how long one health check may take before it counts as
// failed: a probe answering late is as good as one not answering.
const CheckTimeout = 5 * time.Second

// Check says whether one part of a process is well: nil when it is, or
// why not. It must give up when ctx ends.
type Check func(ctx context.Context) error

// Health holds a process's named checks, which the roles running in it
// register: liveness checks (is the process alive and its main loops not
// wedged: /healthz) and readiness checks (can it do its job now:
// /readyz). In `berth dev` the server and the agent register theirs in
// one Health. The zero value is not usable; use NewHealth.
type Health struct {
	mu    sync.Mutex
	live  []*namedCheck
	ready []*namedCheck
}

// namedCheck is a check with its name; running is set while a call is
// under way, so that a wedged check is reported, not piled up on.
type namedCheck struct {
	name    string
	check   Check
	running chan struct{} // buffered, 1: held while a call runs
}

// NewHealth returns a Health with no checks: both endpoints answer ok
// until checks are added.
func NewHealth() *Health { return &Health{} }

// Live adds a liveness check: failing, the process should be restarted.
// A role registers checks of its own loops only, never of what it
// depends on (etcd, containerd), which a restart would not mend.
func (h *Health) Live(name string, c Check) { h.add(&h.live, name, c) }

// Ready adds a readiness check: failing, the process is alive but not
// able to serve (not connected, not synced).
func (h *Health) Ready(name string, c Check) { h.add(&h.ready, name, c) }

func (h *Health) add(to *[]*namedCheck, name string, c Check) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	*to = append(*to, &namedCheck{name: name, check: c, running: make(chan struct{}, 1)})
}

// Probe names a set of checks by the path that answers for it.
type Probe string

const (
	// Liveness is the set of Live checks, at /healthz.
	Liveness Probe = "healthz"
	// Readiness is the set of Ready checks, at /readyz.
	Readiness Probe = "readyz"
)

// CheckResult is how one check went.
type CheckResult struct {
	Name string
	Err  error
}

// Run runs a probe's checks at once and returns their
// results in the order they were added.
func (h *Health) Run(ctx context.Context, p Probe) []CheckResult {
	h.mu.Lock()
	checks := slices.Clone(h.live)
	if p == Readiness {
		checks = slices.Clone(h.ready)
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	out := make([]CheckResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		out[i].Name = c.name
		wg.Go(func() { out[i].Err = c.run(ctx) })
	}
	wg.Wait()
	return out
}

// run calls the check, and returns when it answered or ctx ended. A check
// still running from an earlier call fails at once: its loop is wedged.
func (c *namedCheck) run(ctx context.Context) error {
	select {
	case c.running <- struct{}{}:
	default:
		return errors.New("an earlier check has not returned")
	}
	done := make(chan error, 1)
	go func() {
		err := c.check(ctx)
		<-c.running // free before answering, so the next call may start
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s", CheckTimeout)
	}
}

// Handler answers for a probe's checks like
// Kubernetes' /livez and /readyz: 200 "ok" when every check passes, 503
// naming the failed ones otherwise; with ?verbose every check is listed,
// "[+]name ok" or "[-]name failed: reason". ?exclude=name leaves a check
// out (repeatable).
func (h *Health) Handler(p Probe) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		_, verbose := q["verbose"]
		excluded := q["exclude"]
		var b strings.Builder
		failed := 0
		for _, res := range h.Run(r.Context(), p) {
			if slices.Contains(excluded, res.Name) {
				if verbose {
					fmt.Fprintf(&b, "[+]%s excluded: ok\n", res.Name)
				}
				continue
			}
			if res.Err != nil {
				failed++
				fmt.Fprintf(&b, "[-]%s failed: %s\n", res.Name, oneLine(res.Err.Error()))
			} else if verbose {
				fmt.Fprintf(&b, "[+]%s ok\n", res.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(&b, "%s check failed\n", p)
			w.Write([]byte(b.String()))
			return
		}
		if verbose {
			fmt.Fprintf(&b, "%s check passed\n", p)
			w.Write([]byte(b.String()))
			return
		}
		w.Write([]byte("ok"))
	})
}

// oneLine keeps a reason on its line of the answer.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// ServeHealth adds /healthz (the liveness checks) and /readyz (the
// readiness checks) of h to the endpoint; nil adds nothing. Call it
// before Serve.
func (e *Endpoint) ServeHealth(h *Health) {
	if h == nil {
		return
	}
	e.mux.Handle("/"+string(Liveness), h.Handler(Liveness))
	e.mux.Handle("/"+string(Readiness), h.Handler(Readiness))
}
