package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRBAC drives roles with the real binary: an admin makes a deployer
// token for team-a and a viewer user; the deployer applies in team-a and
// is refused in team-b; the viewer cannot scale; revoking the token ends
// the deployer's `berth events -f`.
func TestRBAC(t *testing.T) {
	c := newCluster(t)
	token := strings.TrimSpace(c.mustBerth("token", "create", "ci-a", "--role", "deployer", "--namespace", "team-a", "-q"))
	if !strings.HasPrefix(token, "berth_") {
		t.Fatalf("token create -q printed %q", token)
	}
	if out := c.mustBerth("token", "ls"); !strings.Contains(out, "deployer") || !strings.Contains(out, "team-a") {
		t.Errorf("token ls does not show the role and namespaces:\n%s", out)
	}
	viewerConfig := filepath.Join(c.dir, "vera.config")
	c.mustBerth("user", "create", "vera", "--role", "viewer", "--namespace", "team-a", "-o", viewerConfig)
	if out := c.mustBerth("user", "ls"); !strings.Contains(out, "vera") || !strings.Contains(out, "viewer") {
		t.Errorf("user ls:\n%s", out)
	}

	compose := c.writeFile("shop/compose.yaml", "services:\n  web:\n    image: localhost/busybox:latest\n    command: [sleep, \"3600\"]\n")
	deployer := func(args ...string) (string, string, error) {
		return c.berth(append([]string{"--token", token}, args...)...)
	}
	if out, errOut, err := deployer("-n", "team-a", "apply", "-f", compose); err != nil {
		t.Fatalf("the deployer's apply in team-a: %v\n%s%s", err, out, errOut)
	}
	if out, _, err := deployer("whoami"); err != nil || !strings.Contains(out, "token/ci-a") || !strings.Contains(out, "deployer") {
		t.Errorf("whoami as the deployer: %v\n%s", err, out)
	}
	_, errOut, err := deployer("-n", "team-b", "apply", "-f", compose)
	if err == nil || !strings.Contains(errOut, "team-b") || !strings.Contains(errOut, "permission denied") {
		t.Errorf("the deployer's apply in team-b: err %v, stderr %q; want a refusal naming team-b", err, errOut)
	}
	if out, _, err := deployer("ps", "-A", "-o", "json"); err != nil || strings.Contains(out, "team-b") {
		t.Errorf("ps -A as the deployer: %v\n%s", err, out)
	}

	_, errOut, err = c.berth("--config", viewerConfig, "-n", "team-a", "scale", "shop/web=2")
	if err == nil || !strings.Contains(errOut, "viewer") || !strings.Contains(errOut, "user/vera") {
		t.Errorf("the viewer's scale: err %v, stderr %q; want a refusal naming its role", err, errOut)
	}
	if out, errOut, err := c.berth("--config", viewerConfig, "get", "services"); err != nil || !strings.Contains(out, "shop/web") {
		t.Errorf("the viewer's get services in its namespace: %v\n%s%s", err, out, errOut)
	}

	bin, args := command(c.netns, "--config", c.configPath, "--token", token, "-n", "team-a", "events", "-f")
	events := startProc(t, "events -f", nil, bin, args...)
	events.waitOutput(t, "TIME", 30*time.Second)
	c.mustBerth("token", "revoke", "ci-a")
	select {
	case <-events.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("berth events -f still runs after its token was revoked:\n%s", events.out.String())
	}
	if events.err == nil || !strings.Contains(events.out.String(), "revoked") {
		t.Errorf("berth events -f ended with %v, output:\n%s\nwant a failure saying the token was revoked", events.err, events.out.String())
	}
}
