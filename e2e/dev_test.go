package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevRunsAnApp runs `berth dev` as the README's `make dev` does, a
// server and an agent in one process sharing one metrics endpoint, and
// runs an app on it: the one-machine cluster starts, serves, and reports
// the metrics of both roles.
func TestDevRunsAnApp(t *testing.T) {
	clusters++
	dir, err := os.MkdirTemp("", "berth-e2e-dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &cluster{t: t, dir: dir, configPath: filepath.Join(dir, "config"), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), agents: map[string]*proc{}}
	name := fmt.Sprintf("dev-%d", os.Getpid())
	dataDir := filepath.Join(dir, "dev")
	// Registered before the process, so it runs after berth dev stopped.
	t.Cleanup(func() { cleanupNode(t, name, filepath.Join(dataDir, "agent")) })
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dev := startProc(t, "dev", nil, berthBin, "dev", "--config", c.configPath, "--data-dir", dataDir,
		"--listen", c.addr, "--metrics-addr", metricsAddr, "--name", name, "--containerd-namespace", namespace,
		"--container-range", fmt.Sprintf("10.%d.0.0/16", 220+clusters%30), "--network-range", fmt.Sprintf("10.%d.0.0/16", 160+clusters%30),
		"--cpus", "2", "--memory", "4294967296")
	dev.waitOutput(t, "Berth is running", 90*time.Second)

	c.importImage()
	port := freePort(t)
	c.mustBerth("apply", "-f", c.writeFile("app/compose.yaml", fmt.Sprintf(webCompose, 1, port)), "-p", "devapp")
	c.waitRunning("devapp/web", 1, 90*time.Second)
	c.waitRunning("devapp/front", 1, 90*time.Second)
	eventually(t, 30*time.Second, func() (bool, string) {
		body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
		return err == nil && strings.Contains(body, "hello from berth"), fmt.Sprintf("published port: %v %q", err, body)
	})

	body, err := httpGet("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics of berth dev: %v", err)
	}
	for _, want := range []string{`berth_cert_expiry_seconds{id=`, `role="server"`, `role="node"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the metrics of berth dev lack %q", want)
		}
	}
	c.mustBerth("delete", "devapp")
}
