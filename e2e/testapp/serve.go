package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// server is `testapp serve`: one task of a test service. Its routes:
//
//	GET /            "NAME HOSTNAME IP\n": who answered; IP is the local
//	                 address the request came in on
//	GET /health      200 "ok", or 500 "sick" after POST /sick
//	POST /sick       fail the health check from now on (POST /well undoes it)
//	POST /exit?code=N  answer, then exit with code N (default 1)
//	GET /kv/KEY      the value stored under KEY, 404 if none
//	PUT /kv/KEY      store the body under KEY
//	POST /kv/KEY     add the body (an integer) to KEY's integer value
//	                 (missing is 0); answers the new value
//	DELETE /kv/KEY   remove KEY; answers the value it had, 404 if none
//	ANY /proxy?url=URL  make the same request to URL and answer with its
//	                 status and body (502 if it cannot be made): a front end
//	                 calling another service by name
//
// With -data DIR the key/value store is a database: it is read from
// DIR/kv.json at start and written back (and synced) before each change is
// answered, so it outlives the process.
type server struct {
	name     string
	hostname string
	sick     atomic.Bool
	client   *http.Client
	// exit ends the process; tests replace it.
	exit func(code int)

	mu sync.Mutex
	kv map[string]string
	// file is where kv is kept; "" keeps it in memory only.
	file string
}

// load reads the store from s.file, when there is one.
func (s *server) load() error {
	if s.file == "" {
		return nil
	}
	b, err := os.ReadFile(s.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &s.kv)
}

// save writes the store to s.file (s.mu held): a temporary file, synced,
// then renamed over the old one, so a kill never leaves half a store.
func (s *server) save() error {
	if s.file == "" {
		return nil
	}
	b, err := json.Marshal(s.kv)
	if err != nil {
		return err
	}
	tmp := s.file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.file)
}

func newServer(name, hostname string) *server {
	return &server{
		name:     name,
		hostname: hostname,
		client:   &http.Client{Timeout: 5 * time.Second},
		exit:     os.Exit,
		kv:       map[string]string{},
	}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.identity)
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("POST /sick", func(w http.ResponseWriter, r *http.Request) { s.sick.Store(true) })
	mux.HandleFunc("POST /well", func(w http.ResponseWriter, r *http.Request) { s.sick.Store(false) })
	mux.HandleFunc("POST /exit", s.exitAfter)
	mux.HandleFunc("GET /kv/{key}", s.kvGet)
	mux.HandleFunc("PUT /kv/{key}", s.kvPut)
	mux.HandleFunc("POST /kv/{key}", s.kvAdd)
	mux.HandleFunc("DELETE /kv/{key}", s.kvTake)
	mux.HandleFunc("/proxy", s.proxy)
	return mux
}

func (s *server) identity(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintln(w, identityLine(s.name, s.hostname, localIP(r)))
}

// identityLine is the answer of GET /, without its newline.
func identityLine(name, hostname string, ip netip.Addr) string {
	addr := "unknown"
	if ip.IsValid() {
		addr = ip.String()
	}
	return strings.Join([]string{name, hostname, addr}, " ")
}

// localIP is the address of the connection r came in on: the task's own
// address on the network the client used.
func localIP(r *http.Request) netip.Addr {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	if s.sick.Load() {
		http.Error(w, "sick", http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *server) exitAfter(w http.ResponseWriter, r *http.Request) {
	code := 1
	if c := r.URL.Query().Get("code"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil {
			http.Error(w, "code: "+err.Error(), http.StatusBadRequest)
			return
		}
		code = n
	}
	fmt.Fprintf(w, "exiting with code %d\n", code)
	// The answer is on the wire before the process ends.
	w.(http.Flusher).Flush()
	s.exit(code)
}

func (s *server) kvGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v, ok := s.kv[r.PathValue("key")]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	io.WriteString(w, v)
}

func (s *server) kvPut(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[r.PathValue("key")] = string(b)
	if err := s.save(); err != nil {
		http.Error(w, "saving: "+err.Error(), http.StatusInternalServerError)
	}
}

func (s *server) kvAdd(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		http.Error(w, "the body must be an integer: "+err.Error(), http.StatusBadRequest)
		return
	}
	key := r.PathValue("key")
	s.mu.Lock()
	defer s.mu.Unlock()
	old := 0
	if v, ok := s.kv[key]; ok {
		if old, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
			http.Error(w, fmt.Sprintf("the value of %s is not an integer: %v", key, err), http.StatusConflict)
			return
		}
	}
	s.kv[key] = strconv.Itoa(old + n)
	if err := s.save(); err != nil {
		http.Error(w, "saving: "+err.Error(), http.StatusInternalServerError)
		return
	}
	io.WriteString(w, s.kv[key])
}

func (s *server) kvTake(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[key]
	if !ok {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	delete(s.kv, key)
	if err := s.save(); err != nil {
		http.Error(w, "saving: "+err.Error(), http.StatusInternalServerError)
		return
	}
	io.WriteString(w, v)
}

func (s *server) proxy(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Query().Get("url")
	if target == "" {
		http.Error(w, "proxy: give the address to fetch as ?url=", http.StatusBadRequest)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, r.Body)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := s.client.Do(req)
	if err != nil {
		http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// runServe serves until the process is told to stop.
func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	port := fs.Int("port", 8080, "TCP port to listen on, on every address")
	name := fs.String("name", "testapp", "name to answer GET / with (the service's, say)")
	data := fs.String("data", "", "directory to keep the key/value store in (kv.json); empty keeps it in memory")
	var need stringList
	fs.Var(&need, "require-file", "a file that must be readable at start, like a password (repeatable); only its size is printed")
	if err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	for _, f := range need {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("required file: %w", err)
		}
		fmt.Fprintf(stdout, "read %s (%d bytes)\n", f, len(b))
	}
	hostname, err := os.Hostname()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		return err
	}
	s := newServer(*name, hostname)
	if *data != "" {
		s.file = filepath.Join(*data, "kv.json")
		if err := s.load(); err != nil {
			return fmt.Errorf("loading the store: %w", err)
		}
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "testapp %s on %s serving on %s\n", *name, hostname, l.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}
