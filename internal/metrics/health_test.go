package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthHandler(t *testing.T) {
	h := NewHealth()
	h.Live("loop", func(context.Context) error { return nil })
	h.Ready("etcd", func(context.Context) error { return nil })
	h.Ready("leader", func(context.Context) error { return errors.New("no leader known\nyet") })

	for _, tt := range []struct {
		path     string
		code     int
		body     string
		lacks    string
		fullBody bool
	}{
		{path: "/healthz", code: http.StatusOK, body: "ok", fullBody: true},
		{path: "/healthz?verbose", code: http.StatusOK, body: "[+]loop ok\nhealthz check passed\n", fullBody: true},
		{path: "/readyz", code: http.StatusServiceUnavailable, body: "[-]leader failed: no leader known yet\nreadyz check failed\n", fullBody: true},
		{path: "/readyz?verbose", code: http.StatusServiceUnavailable, body: "[+]etcd ok\n[-]leader failed: no leader known yet\nreadyz check failed\n", fullBody: true},
		{path: "/readyz?exclude=leader", code: http.StatusOK, body: "ok", fullBody: true},
		{path: "/readyz?exclude=leader&verbose", code: http.StatusOK, body: "[+]leader excluded: ok\n"},
	} {
		rec := httptest.NewRecorder()
		mux := http.NewServeMux()
		mux.Handle("/healthz", h.Handler(Liveness))
		mux.Handle("/readyz", h.Handler(Readiness))
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		body := rec.Body.String()
		if rec.Code != tt.code {
			t.Errorf("GET %s: %d, want %d\n%s", tt.path, rec.Code, tt.code, body)
		}
		if (tt.fullBody && body != tt.body) || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s answered %q, want %q", tt.path, body, tt.body)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("GET %s: Content-Type %q, want text/plain", tt.path, ct)
		}
	}
}

func TestHealthWithoutChecksIsOK(t *testing.T) {
	rec := httptest.NewRecorder()
	NewHealth().Handler(Readiness).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "ok" {
		t.Fatalf("no checks: %d %q, want 200 ok", rec.Code, rec.Body.String())
	}
}

func TestHealthRefusesPost(t *testing.T) {
	rec := httptest.NewRecorder()
	NewHealth().Handler(Liveness).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /healthz: %d, want 405", rec.Code)
	}
}

// A check that does not return is a wedged loop: the probe answers failed
// when its context ends, and the next probe fails at once rather than
// starting another call that would block too.
func TestHealthWedgedCheckFails(t *testing.T) {
	release := make(chan struct{})
	calls := 0
	h := NewHealth()
	h.Live("worker", func(context.Context) error {
		calls++
		<-release
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as if CheckTimeout had passed
	res := h.Run(ctx, Liveness)
	if len(res) != 1 || res[0].Err == nil {
		t.Fatalf("wedged check: %v, want it failed", res)
	}
	res = h.Run(context.Background(), Liveness)
	if len(res) != 1 || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "earlier check") {
		t.Fatalf("second run of a wedged check: %v, want it failed at once", res)
	}
	close(release)
	// Once the check returns, it runs again.
	for {
		if res := h.Run(context.Background(), Liveness); res[0].Err == nil {
			break
		}
	}
	if calls != 2 {
		t.Errorf("check called %d times, want 2 (none while wedged)", calls)
	}
}

func TestEndpointServesHealth(t *testing.T) {
	h := NewHealth()
	h.Ready("session", func(context.Context) error { return errors.New("not connected") })
	e, err := Listen("127.0.0.1:0", NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.ServeHealth(h)
	served := make(chan error, 1)
	go func() { served <- e.Serve() }()
	t.Cleanup(func() {
		e.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
		resp, err := http.Get("http://" + e.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s %q, want %d", path, resp.Status, body, want)
		}
	}
}
