// Package metrics serves a Berth process's Prometheus metrics: the
// registry every component registers its collectors with, the /metrics
// endpoint, a collector for counts by state read at scrape time, and the
// gRPC server's request metrics.
package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding the Go runtime's and the
// process's collectors. One process has one: in `berth dev` the server and
// the agent share it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Register registers every collector with reg, naming the first that
// fails: two components claiming one metric name is a programming error
// that must show at start, not as a silently missing series.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// Endpoint serves /metrics over plain HTTP.
type Endpoint struct {
	listener net.Listener
	server   *http.Server
	mux      *http.ServeMux
}

// ServeProfiles adds Go's runtime profiles (CPU, heap, goroutines) at
// /debug/pprof/ to the endpoint, for finding where a server spends its
// time and memory. Call it before Serve. Profiles show the process's
// memory (secrets included) and cost it CPU, so they are served only on a
// loopback address: on another one this is an error and nothing is added.
func (e *Endpoint) ServeProfiles() error {
	if err := LoopbackOnly(e.listener.Addr()); err != nil {
		return err
	}
	e.mux.HandleFunc("/debug/pprof/", pprof.Index)
	e.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	e.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	e.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	e.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return nil
}

// LoopbackOnly says why profiles may not be served on addr, or nil when
// it is a loopback address.
func LoopbackOnly(addr net.Addr) error {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		if host, _, err := net.SplitHostPort(addr.String()); err == nil {
			ip = net.ParseIP(host)
		}
	}
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("runtime profiles (--profiles) are served only on a loopback --metrics-addr, like 127.0.0.1:9484, and %s is not one: they show the process's memory; serve metrics on loopback, or drop --profiles", addr)
	}
	return nil
}

// Listen opens the metrics endpoint on addr (host:port; port 0 picks a
// free one). Serve must be called for it to answer.
func Listen(addr string, g prometheus.Gatherer, log *slog.Logger) (*Endpoint, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint on %s: %w (choose another with --metrics-addr, or turn it off with --metrics-addr \"\")", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(g, log))
	return &Endpoint{
		listener: l,
		// Requests have no body: after the header there is nothing to
		// wait for. No write timeout: a CPU profile takes its seconds.
		server: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		mux:    mux,
	}, nil
}

// Handler serves g's metrics in the Prometheus text (or negotiated)
// format. A collector that fails is logged and its metrics left out,
// rather than failing the whole scrape.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Addr is the address the endpoint listens on.
func (e *Endpoint) Addr() string { return e.listener.Addr().String() }

// Serve answers scrapes until Close.
func (e *Endpoint) Serve() error {
	if err := e.server.Serve(e.listener); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	return nil
}

// Close stops the endpoint, whether or not Serve ran.
func (e *Endpoint) Close() error {
	err := e.server.Close()
	// Close leaves alone a listener Serve never took.
	if lerr := e.listener.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
		err = lerr
	}
	return err
}

// slogPrinter gives promhttp's error log a slog destination.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }
