package controlplane

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyDeadline sends a body that never ends: the handler's read fails
// at the deadline instead of waiting for ever.
func TestBodyDeadline(t *testing.T) {
	srv := httptest.NewServer(withBodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "body too slow", http.StatusRequestTimeout)
			return
		}
		w.WriteHeader(http.StatusOK)
	}), 100*time.Millisecond))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Ten bytes promised, one sent.
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nx")
	// Far longer than the deadline; reached only when the server waits
	// for the body for ever.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body that never ends: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d; want %d from the handler's failed read", resp.StatusCode, http.StatusRequestTimeout)
	}
}

// TestBodyDeadlineSparesStreams streams a response for longer than the
// body's deadline, after a body and without one: the request's context
// stays alive.
func TestBodyDeadlineSparesStreams(t *testing.T) {
	const deadline = 50 * time.Millisecond
	srv := httptest.NewServer(withBodyDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		for i := range 4 {
			// A stream's events come when they come; here, after the
			// body's deadline has passed.
			select {
			case <-time.After(deadline):
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "event %d\n", i)
			w.(http.Flusher).Flush()
		}
	}), deadline))
	defer srv.Close()
	for _, body := range []string{"", `{"app":"shop"}`} {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !strings.Contains(string(got), "event 3") {
			t.Fatalf("stream after body %q: %q, %v; want all four events", body, got, err)
		}
	}
}
