package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const metricsCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
`

// TestMetricsOfServerAndAgent scrapes a server's and an agent's /metrics
// after a service started, and reads the server's JSON logs.
func TestMetricsOfServerAndAgent(t *testing.T) {
	serverMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--metrics-addr", serverMetrics, "--log-format", "json"))
	agentMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.startAgent("alpha", "--metrics-addr", agentMetrics)
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("app/compose.yaml", metricsCompose), "-p", "metrics")
	c.waitRunning("metrics/web", 1, 90*time.Second)

	scrapes := []struct {
		who, addr string
		want      []string
	}{
		{"server", serverMetrics, []string{
			`berth_tasks{state="running"} 1` + "\n",
			`berth_tasks{state="failed"} 0` + "\n",
			`berth_nodes{status="ready"} 1` + "\n",
			"berth_agent_sessions 1\n",
			"berth_placements_total 1\n",
			"berth_scheduling_latency_seconds_count 1\n",
			`berth_etcd_txn_duration_seconds_count{result="committed"} `,
			`grpc_server_handled_total{grpc_code="OK",grpc_method="Apply",grpc_service="berth.v1.ClusterService",grpc_type="unary",role="server"} 1` + "\n",
			`grpc_server_handling_seconds_count{grpc_method="Apply",grpc_service="berth.v1.ClusterService",grpc_type="unary",role="server"} 1` + "\n",
			`berth_service_desired_tasks{app="metrics",namespace="default",service="web"} 1` + "\n",
			`berth_service_running_tasks{app="metrics",namespace="default",service="web"} 1` + "\n",
			`berth_node_allocatable_cpu_cores{node="alpha"} 2` + "\n",
			`berth_node_allocatable_memory_bytes{node="alpha"} 4.294967296e+09` + "\n",
			`berth_node_allocated_cpu_cores{node="alpha"} 0` + "\n",
			`role="ca"} `, // berth_cert_expiry_seconds of the cluster CA
			`role="server"} `,
			"go_goroutines ",
			"process_resident_memory_bytes ",
		}},
		{"agent", agentMetrics, []string{
			`berth_node_tasks{state="running"} 1` + "\n",
			"berth_container_start_seconds_count 1\n",
			"berth_image_pull_seconds_count 0\n", // the image was imported
			"go_goroutines ",
		}},
	}
	for _, s := range scrapes {
		// The running state reaches the server's cache through the
		// agent's batched reports: scrape until it shows.
		eventually(t, 30*time.Second, func() (bool, string) {
			body, err := httpGet("http://" + s.addr + "/metrics")
			if err != nil {
				return false, fmt.Sprintf("scraping the %s: %v", s.who, err)
			}
			for _, w := range s.want {
				if !strings.Contains(body, w) {
					return false, fmt.Sprintf("the %s's metrics lack %q:\n%s", s.who, w, berthLines(body))
				}
			}
			return true, ""
		})
	}

	if body, err := httpGet("http://" + serverMetrics + "/metrics"); err != nil || !regexp.MustCompile(`(?m)^berth_leader\{server="[^"]+"\} 1$`).MatchString(body) {
		t.Errorf("the only server does not report itself the leader (%v):\n%s", err, berthLines(body))
	}

	var ready map[string]any
	for _, line := range strings.Split(c.server.out.String(), "\n") {
		if strings.Contains(line, `"server ready"`) {
			if err := json.Unmarshal([]byte(line), &ready); err != nil {
				t.Fatalf("--log-format json wrote %q: %v", line, err)
			}
		}
	}
	if ready["level"] != "INFO" || ready["listen"] != c.addr {
		t.Fatalf(`"server ready" record = %v, want level INFO and listen %s`, ready, c.addr)
	}

	// Both are alive and ready; the agent stops being ready when its
	// session ends with the server, and stays alive.
	for _, probe := range []struct{ addr, path, want string }{
		{serverMetrics, "/healthz", "ok"},
		{serverMetrics, "/readyz?verbose", "[+]etcd ok\n[+]cache ok\n[+]leader ok\n"},
		{agentMetrics, "/healthz?verbose", "[+]worker ok\n"},
		{agentMetrics, "/readyz?verbose", "[+]session ok\n[+]containerd ok\n"},
	} {
		code, body, err := httpStatus("http://" + probe.addr + probe.path)
		if err != nil || code != 200 || !strings.Contains(body, probe.want) {
			t.Errorf("GET %s%s: %d %q (%v), want 200 with %q", probe.addr, probe.path, code, body, err, probe.want)
		}
	}
	c.server.stop()
	eventually(t, 60*time.Second, func() (bool, string) {
		code, body, err := httpStatus("http://" + agentMetrics + "/readyz?verbose")
		return err == nil && code == 503 && strings.Contains(body, "[-]session failed: ") && strings.Contains(body, "[+]containerd ok\n"),
			fmt.Sprintf("the agent's /readyz without a server: %d %q (%v), want 503 naming the session", code, body, err)
	})
	if code, body, err := httpStatus("http://" + agentMetrics + "/healthz"); err != nil || code != 200 {
		t.Errorf("the agent's /healthz without a server: %d %q (%v), want 200: it is alive", code, body, err)
	}
}

// httpStatus GETs url and returns the status code and body.
func httpStatus(url string) (int, string, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// berthLines keeps Berth's own metrics of a scrape, for failure messages.
func berthLines(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "berth_") && !strings.Contains(l, "_bucket{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

const statsCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports:
      - "%d:80"
    deploy:
      resources:
        limits:
          memory: 64M
`

const brokenCompose = `
services:
  crash:
    image: localhost/busybox:latest
    command: ["sh", "-c", "exit 3"]
  nopull:
    image: %s/missing:1
`

// metricValue is the value of series in a scrape, -1 when it is absent.
func metricValue(body, series string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestStatsAndContainerMetrics: `berth stats --no-stream` shows a
// running task's memory and, once it served a few requests, its network
// bytes; the agent's metrics carry the task's container series, which go
// when the service is removed.
func TestStatsAndContainerMetrics(t *testing.T) {
	serverMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--metrics-addr", serverMetrics))
	agentMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.startAgent("alpha", "--metrics-addr", agentMetrics)
	c.importImage()
	port := freePort(t)
	c.mustBerth("apply", "-f", c.writeFile("app/compose.yaml", fmt.Sprintf(statsCompose, port)), "-p", "stats")
	tk := c.waitRunning("stats/web", 1, 90*time.Second)[0]
	eventually(t, 30*time.Second, func() (bool, string) {
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
		return err == nil && strings.Contains(body, "hello from berth"), fmt.Sprintf("published port: %v %q", err, body)
	})

	var rows []struct {
		Task             string `json:"task"`
		Service          string `json:"service"`
		MemoryBytes      uint64 `json:"memoryBytes"`
		MemoryLimitBytes uint64 `json:"memoryLimitBytes"`
		NetworkRxBytes   uint64 `json:"networkRxBytes"`
		NetworkTxBytes   uint64 `json:"networkTxBytes"`
	}
	if err := json.Unmarshal([]byte(c.mustBerth("stats", "stats/web", "--no-stream", "-o", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Task != tk.ID || rows[0].MemoryBytes == 0 || rows[0].MemoryLimitBytes != 64<<20 ||
		rows[0].NetworkRxBytes == 0 || rows[0].NetworkTxBytes == 0 {
		t.Fatalf("berth stats -o json = %+v, want task %s with memory, its 64M limit and network bytes both ways", rows, tk.ID)
	}
	table := c.mustBerth("stats", "--no-stream")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "NET I/O") ||
		!strings.Contains(lines[1], "stats/web.1") || !strings.Contains(lines[1], "/ 64MiB") {
		t.Fatalf("berth stats --no-stream:\n%s", table)
	}

	labels := fmt.Sprintf(`{app="stats",namespace="default",service="web",slot="1",task="%s"}`, tk.ID)
	series := []string{"berth_container_cpu_seconds_total", "berth_container_memory_working_set_bytes", "berth_container_memory_limit_bytes",
		"berth_container_network_receive_bytes_total", "berth_container_network_transmit_bytes_total"}
	body, err := httpGet("http://" + agentMetrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range series {
		if !strings.Contains(body, s+labels+" ") {
			t.Errorf("the agent's metrics lack %s%s:\n%s", s, labels, berthLines(body))
		}
	}
	if !strings.Contains(body, "berth_container_memory_limit_bytes"+labels+" 6.7108864e+07\n") {
		t.Errorf("the agent reports a memory limit other than 64M:\n%s", berthLines(body))
	}

	// A service whose container exits, and one whose image cannot be
	// fetched: the server counts the failures and restarts, the agent the
	// failed pull, by registry.
	registry := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.mustBerth("apply", "-f", c.writeFile("broken/compose.yaml", fmt.Sprintf(brokenCompose, registry)), "-p", "broken")
	eventually(t, 120*time.Second, func() (bool, string) {
		server, err := httpGet("http://" + serverMetrics + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		agent, err := httpGet("http://" + agentMetrics + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		failures := metricValue(server, `berth_service_task_failures_total{app="broken",namespace="default",service="crash"}`)
		restarts := metricValue(server, `berth_service_task_restarts_total{app="broken",namespace="default",service="crash"}`)
		pulls := metricValue(agent, `berth_image_pull_failures_total{registry="`+registry+`"}`)
		return failures >= 1 && restarts >= 1 && pulls >= 1, fmt.Sprintf("failures %v, restarts %v, pull failures %v; want each at least 1:\n%s\n%s",
			failures, restarts, pulls, berthLines(server), berthLines(agent))
	})
	c.mustBerth("delete", "broken")

	c.mustBerth("delete", "stats")
	eventually(t, 90*time.Second, func() (bool, string) {
		body, err := httpGet("http://" + agentMetrics + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		return !strings.Contains(body, `task="`+tk.ID+`"`), "the removed task's container series remain:\n" + berthLines(body)
	})
}
