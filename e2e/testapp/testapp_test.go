package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// call makes one request to srv and returns the status and body.
func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func newTestServer(t *testing.T, name string) (*server, *httptest.Server) {
	s := newServer(name, "host-1")
	srv := httptest.NewServer(s.handler())
	t.Cleanup(srv.Close)
	return s, srv
}

func TestServerRoutes(t *testing.T) {
	_, srv := newTestServer(t, "web")
	steps := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"GET", "/", "", 200, "web host-1 127.0.0.1\n"},
		{"GET", "/nowhere", "", 404, "404 page not found\n"},
		{"GET", "/health", "", 200, "ok\n"},
		{"POST", "/sick", "", 200, ""},
		{"GET", "/health", "", 500, "sick\n"},
		{"POST", "/well", "", 200, ""},
		{"GET", "/health", "", 200, "ok\n"},
		{"GET", "/kv/color", "", 404, "no such key\n"},
		{"PUT", "/kv/color", "blue", 200, ""},
		{"GET", "/kv/color", "", 200, "blue"},
		{"POST", "/kv/color", "1", 409, "the value of color is not an integer: strconv.Atoi: parsing \"blue\": invalid syntax\n"},
		{"POST", "/kv/votes", "2", 200, "2"},
		{"POST", "/kv/votes", " 3\n", 200, "5"},
		{"POST", "/kv/votes", "three", 400, "the body must be an integer: strconv.Atoi: parsing \"three\": invalid syntax\n"},
		{"DELETE", "/kv/votes", "", 200, "5"},
		{"DELETE", "/kv/votes", "", 404, "no such key\n"},
		{"GET", "/proxy", "", 400, "proxy: give the address to fetch as ?url=\n"},
	}
	for _, s := range steps {
		code, body := call(t, srv, s.method, s.path, s.body)
		if code != s.code || body != s.want {
			t.Errorf("%s %s %q: %d %q, want %d %q", s.method, s.path, s.body, code, body, s.code, s.want)
		}
	}
}

func TestProxyForwardsTheRequest(t *testing.T) {
	_, back := newTestServer(t, "cache")
	_, front := newTestServer(t, "front")
	steps := []struct {
		method, target, body string
		code                 int
		want                 string
	}{
		{"GET", back.URL + "/", "", 200, "cache host-1 127.0.0.1\n"},
		{"POST", back.URL + "/kv/votes", "4", 200, "4"},
		{"GET", back.URL + "/kv/votes", "", 200, "4"},
		{"GET", back.URL + "/kv/none", "", 404, "no such key\n"},
	}
	for _, s := range steps {
		code, body := call(t, front, s.method, "/proxy?url="+s.target, s.body)
		if code != s.code || body != s.want {
			t.Errorf("%s /proxy?url=%s: %d %q, want %d %q", s.method, s.target, code, body, s.code, s.want)
		}
	}
	back.Close()
	if code, body := call(t, front, "GET", "/proxy?url="+back.URL+"/", ""); code != http.StatusBadGateway || !strings.HasPrefix(body, "proxy: ") {
		t.Errorf("proxy to a closed server: %d %q, want 502 and the error", code, body)
	}
}

func TestExitAnswersFirst(t *testing.T) {
	s, srv := newTestServer(t, "web")
	exited := make(chan int, 1)
	s.exit = func(code int) { exited <- code }
	if code, body := call(t, srv, "POST", "/exit?code=3", ""); code != 200 || body != "exiting with code 3\n" {
		t.Fatalf("POST /exit?code=3: %d %q", code, body)
	}
	if code := <-exited; code != 3 {
		t.Fatalf("exited with %d, want 3", code)
	}
	if code, _ := call(t, srv, "POST", "/exit?code=x", ""); code != 400 {
		t.Fatalf("POST /exit?code=x: %d, want 400", code)
	}
}

func TestWorkerMovesVotes(t *testing.T) {
	_, cache := newTestServer(t, "cache")
	_, db := newTestServer(t, "db")
	w := &worker{from: cache.URL, to: db.URL, client: cache.Client()}
	ctx := context.Background()

	if moved, total, err := w.move(ctx); moved != 0 || total != 0 || err != nil {
		t.Fatalf("with no votes: moved %d total %d err %v, want nothing", moved, total, err)
	}
	call(t, cache, "POST", "/kv/votes", "3")
	if moved, total, err := w.move(ctx); moved != 3 || total != 3 || err != nil {
		t.Fatalf("moved %d total %d err %v, want 3 and 3", moved, total, err)
	}
	call(t, cache, "POST", "/kv/votes", "2")
	if moved, total, err := w.move(ctx); moved != 2 || total != 5 || err != nil {
		t.Fatalf("moved %d total %d err %v, want 2 and 5", moved, total, err)
	}
	if code, body := call(t, cache, "GET", "/kv/votes", ""); code != 404 {
		t.Fatalf("votes left in the cache: %d %q", code, body)
	}

	// A db that cannot take them leaves the votes in the cache.
	call(t, db, "PUT", "/kv/total", "not a number")
	call(t, cache, "POST", "/kv/votes", "4")
	if moved, _, err := w.move(ctx); moved != 0 || err == nil {
		t.Fatalf("into a broken total: moved %d err %v, want an error and nothing moved", moved, err)
	}
	if code, body := call(t, cache, "GET", "/kv/votes", ""); code != 200 || body != "4" {
		t.Fatalf("after a failed move the cache holds %d %q, want the 4 votes back", code, body)
	}
}

func TestIdentityLine(t *testing.T) {
	tests := []struct {
		ip   netip.Addr
		want string
	}{
		{netip.MustParseAddr("10.128.0.5"), "web task-1 10.128.0.5"},
		{netip.Addr{}, "web task-1 unknown"},
	}
	for _, tt := range tests {
		if got := identityLine("web", "task-1", tt.ip); got != tt.want {
			t.Errorf("identityLine(%v) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i
	}
	tests := []struct {
		name  string
		times []time.Duration
		p     int
		want  time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"median of even takes the lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100", ms(5, 9, 1), 100, 9 * time.Millisecond},
		{"p0 is the least", ms(5, 9, 1), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.times, tt.p); got != tt.want {
			t.Errorf("%s: percentile(p%d) = %s, want %s", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1500", 1500, false},
		{"64k", 64000, false},
		{"64K", 64000, false},
		{"100M", 100e6, false},
		{"2G", 2e9, false},
		{"0", 0, true},
		{"-5", 0, true},
		{"M", 0, true},
		{"1.5G", 0, true},
		{"9999999999999G", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestMegabytesPerSecond(t *testing.T) {
	tests := []struct {
		n    int64
		d    time.Duration
		want float64
	}{
		{100e6, time.Second, 100},
		{50e6, 2 * time.Second, 25},
		{1, 0, 0},
	}
	for _, tt := range tests {
		if got := megabytesPerSecond(tt.n, tt.d); got != tt.want {
			t.Errorf("megabytesPerSecond(%d, %s) = %v, want %v", tt.n, tt.d, got, tt.want)
		}
	}
}

// TestStoreOutlivesTheServer: with a data file, a second server over the
// same directory answers with what the first one stored.
func TestStoreOutlivesTheServer(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kv.json")
	first := newServer("db", "host-1")
	first.file = file
	srv := httptest.NewServer(first.handler())
	if code, body := call(t, srv, "PUT", "/kv/greeting", "hello"); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := call(t, srv, "POST", "/kv/count", "3"); code != http.StatusOK || body != "3" {
		t.Fatalf("POST: %d %s", code, body)
	}
	srv.Close()

	second := newServer("db", "host-2")
	second.file = file
	if err := second.load(); err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewServer(second.handler())
	defer srv.Close()
	for key, want := range map[string]string{"greeting": "hello", "count": "3"} {
		if code, body := call(t, srv, "GET", "/kv/"+key, ""); code != http.StatusOK || body != want {
			t.Errorf("GET /kv/%s after a restart: %d %q, want %q", key, code, body, want)
		}
	}
}
