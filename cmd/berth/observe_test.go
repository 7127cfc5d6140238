package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

func TestLogFormats(t *testing.T) {
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	tests := []struct {
		format string
		check  func(t *testing.T, line string)
	}{
		{"json", func(t *testing.T, line string) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("line %q is not JSON: %v", line, err)
			}
			if rec["msg"] != "server ready" || rec["level"] != "INFO" || rec["listen"] != "127.0.0.1:4242" {
				t.Errorf("record = %v, want msg, level and listen", rec)
			}
		}},
		{"text", func(t *testing.T, line string) {
			if !strings.Contains(line, `level=INFO msg="server ready" listen=127.0.0.1:4242`) {
				t.Errorf("line = %q, want key=value pairs", line)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			f := logFlags{level: "info", format: tt.format}
			log, err := f.logger(&buf)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("hidden below the level")
			log.Info("server ready", "listen", "127.0.0.1:4242")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1:\n%s", len(lines), buf.String())
			}
			tt.check(t, lines[0])
		})
	}
}

func TestLogFlagErrorsSayWhatToUse(t *testing.T) {
	tests := []struct {
		flags logFlags
		want  string
	}{
		{logFlags{level: "loud", format: "text"}, "--log-level \"loud\": use debug, info, warn or error"},
		{logFlags{level: "info", format: "xml"}, "--log-format \"xml\": use text or json"},
	}
	for _, tt := range tests {
		if _, err := tt.flags.logger(io.Discard); err == nil || err.Error() != tt.want {
			t.Errorf("%+v: err = %v, want %q", tt.flags, err, tt.want)
		}
	}
}

// metricsCommand is a command with the --metrics-addr flag, set to addr
// when explicit.
func metricsCommand(t *testing.T, addr string, explicit bool) *cobra.Command {
	cmd := &cobra.Command{}
	var v string
	cmd.Flags().StringVar(&v, "metrics-addr", addr, "")
	if explicit {
		if err := cmd.Flags().Set("metrics-addr", addr); err != nil {
			t.Fatal(err)
		}
	}
	return cmd
}

func TestServeMetricsOnTheConfiguredAddress(t *testing.T) {
	reg := metrics.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Inc()
	log := slog.New(slog.DiscardHandler)
	m, err := serveMetrics(metricsCommand(t, "127.0.0.1:0", true), "127.0.0.1:0", reg, metrics.NewHealth(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := http.Get("http://" + m.endpoint.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "berth_test_total 1\n") {
		t.Fatalf("scrape lacks berth_test_total 1:\n%s", body)
	}
}

func TestServeMetricsOnATakenAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	tests := []struct {
		name     string
		explicit bool
		wantErr  bool
	}{
		{"chosen by the user: an error", true, true},
		{"the default: a warning", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			m, err := serveMetrics(metricsCommand(t, addr, tt.explicit), addr, prometheus.NewRegistry(), metrics.NewHealth(), slog.New(slog.NewTextHandler(&logs, nil)))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer m.Close()
			if m.endpoint != nil || !strings.Contains(logs.String(), "metrics not served") {
				t.Errorf("served %v, logged %q; want nothing served and a warning", m.endpoint, logs.String())
			}
		})
	}
}

func TestServeMetricsOff(t *testing.T) {
	m, err := serveMetrics(metricsCommand(t, "", false), "", prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
	if err != nil || m.endpoint != nil {
		t.Fatalf("serveMetrics(\"\") = %v, %v; want nothing served", m.endpoint, err)
	}
	m.Close()
	select {
	case err := <-m.Err():
		t.Fatalf("Err fired: %v", err)
	default:
	}
}

func TestStartingCheck(t *testing.T) {
	h := metrics.NewHealth()
	started := startingCheck(h, "joining the cluster")
	if res := h.Run(context.Background(), metrics.Readiness); len(res) != 1 || res[0].Name != "start" || res[0].Err == nil || res[0].Err.Error() != "joining the cluster" {
		t.Fatalf("before the start: %+v, want start failed with what it is doing", res)
	}
	started()
	if res := h.Run(context.Background(), metrics.Readiness); res[0].Err != nil {
		t.Fatalf("after the start: %v", res[0].Err)
	}
}
