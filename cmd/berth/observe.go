package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// defaultServerMetricsAddr is where servers (and berth dev) serve their
// metrics unless told otherwise: on loopback, so nothing leaks off the
// machine by default, on the port Berth claims for it.
const defaultServerMetricsAddr = "127.0.0.1:9484"

// logFlags say how a long-running role logs.
type logFlags struct {
	level, format string
}

func (f *logFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.level, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&f.format, "log-format", "text", "text (key=value lines) or json (one JSON object a line, for log collectors)")
}

// logger returns the logger the flags describe, writing to w, and makes
// it the process's default, so that packages logging without one given
// (and the standard log package) write in the same format.
func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(f.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", f.level)
	}
	opts := &slog.HandlerOptions{Level: l}
	var log *slog.Logger
	switch f.format {
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", f.format)
	}
	slog.SetDefault(log)
	return log, nil
}

// metricsServer serves a registry on --metrics-addr while a role runs.
// The zero value serves nothing.
type metricsServer struct {
	endpoint *metrics.Endpoint
	errc     chan error
	done     chan struct{}
}

// serveMetrics serves reg's metrics at http://addr/metrics, and health's
// checks at /healthz and /readyz; an empty addr serves none. An address the user chose that cannot be used is an error;
// the default one being taken (another server on this machine) is only
// warned about: a control plane does not refuse to run for want of its
// metrics.
func serveMetrics(cmd *cobra.Command, addr string, reg prometheus.Gatherer, health *metrics.Health, log *slog.Logger) (*metricsServer, error) {
	return serveMetricsAndProfiles(cmd, addr, reg, health, false, log)
}

// serveMetricsAndProfiles is serveMetrics, with Go's runtime profiles at
// /debug/pprof/ when profiles is set.
func serveMetricsAndProfiles(cmd *cobra.Command, addr string, reg prometheus.Gatherer, health *metrics.Health, profiles bool, log *slog.Logger) (*metricsServer, error) {
	if addr == "" {
		return &metricsServer{}, nil
	}
	e, err := metrics.Listen(addr, reg, log.With("component", "metrics"))
	if err != nil {
		if cmd.Flags().Changed("metrics-addr") {
			return nil, err
		}
		log.Warn("metrics not served", "err", err)
		return &metricsServer{}, nil
	}
	e.ServeHealth(health)
	if profiles {
		if err := e.ServeProfiles(); err != nil {
			e.Close()
			return nil, err
		}
	}
	m := &metricsServer{endpoint: e, errc: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := e.Serve(); err != nil {
			m.errc <- err
		}
	}()
	log.Info("serving metrics", "url", "http://"+e.Addr()+"/metrics")
	return m, nil
}

// startingCheck adds to h the readiness check "start", failing with
// doing until the returned function is called, once the role started.
func startingCheck(h *metrics.Health, doing string) (started func()) {
	var done atomic.Bool
	h.Ready("start", func(context.Context) error {
		if !done.Load() {
			return errors.New(doing)
		}
		return nil
	})
	return func() { done.Store(true) }
}

// Err reports the endpoint failing; it never fires for the zero value.
func (m *metricsServer) Err() <-chan error { return m.errc }

// Close stops the endpoint and waits for it.
func (m *metricsServer) Close() {
	if m.endpoint == nil {
		return
	}
	m.endpoint.Close()
	<-m.done
}
