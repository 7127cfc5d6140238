package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const certsCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
`

// pemCerts reads the certificates of a PEM file.
func pemCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, c)
	}
}

var expiryMetric = regexp.MustCompile(`berth_cert_expiry_seconds\{id="[^"]+",role="(node|server)"\} ([0-9.e+-]+)`)

// TestCertificateRenewalAndCARotation runs a cluster whose certificates
// last 30 seconds: the agent renews its certificate over its session and
// keeps its container and its session; after `berth ca rotate` it renews
// from the new CA and still connects, also after a restart once the old
// CA is gone, and the admin config the server rewrote works.
func TestCertificateRenewalAndCARotation(t *testing.T) {
	serverMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--cert-lifetime", "30s", "--metrics-addr", serverMetrics))
	agentMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.startAgent("alpha", "--metrics-addr", agentMetrics)
	pki := filepath.Join(c.dir, "agent-alpha", "pki")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("app/compose.yaml", certsCompose), "-p", "certs")
	task := c.waitRunning("certs/web", 1, 90*time.Second)[0]

	// Both report the time left on the certificate in use.
	for who, addr := range map[string]string{"server": serverMetrics, "node": agentMetrics} {
		eventually(t, 30*time.Second, func() (bool, string) {
			body, err := httpGet("http://" + addr + "/metrics")
			if err != nil {
				return false, err.Error()
			}
			for _, m := range expiryMetric.FindAllStringSubmatch(body, -1) {
				v, _ := strconv.ParseFloat(m[2], 64)
				if m[1] == who && v > 0 && v <= 30 {
					return true, ""
				}
			}
			return false, fmt.Sprintf("the %s's metrics lack berth_cert_expiry_seconds within 30s:\n%s", who, berthLines(body))
		})
	}

	// Renewal over the session: a new serial, same node, same container.
	first := pemCerts(t, filepath.Join(pki, "node.crt"))[0]
	oldCA := pemCerts(t, filepath.Join(pki, "ca.crt"))[0]
	eventually(t, 60*time.Second, func() (bool, string) {
		now := pemCerts(t, filepath.Join(pki, "node.crt"))[0]
		return now.SerialNumber.Cmp(first.SerialNumber) != 0 && now.Subject.CommonName == first.Subject.CommonName,
			fmt.Sprintf("node certificate still serial %x", now.SerialNumber)
	})
	c.agents["alpha"].waitOutput(t, "renewed the node certificate", 10*time.Second)
	if n := strings.Count(c.agents["alpha"].out.String(), "connected to the control plane"); n != 1 {
		t.Errorf("the agent connected %d times; a renewal must keep its session:\n%s", n, c.agents["alpha"].out.String())
	}
	if now := c.waitRunning("certs/web", 1, 30*time.Second)[0]; now.ID != task.ID {
		t.Fatalf("the task changed across a renewal: %s, was %s", now.ID, task.ID)
	}

	// Rotation: the CLI says how to get a config of the new CA; the
	// server rewrote its admin config (the CLI's here) with both CAs.
	out := c.mustBerth("ca", "rotate")
	if !strings.Contains(out, "Started a CA rollover") || !strings.Contains(out, "admin config") {
		t.Fatalf("berth ca rotate said:\n%s", out)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		bundle := pemCerts(t, filepath.Join(pki, "ca.crt"))
		leaf := pemCerts(t, filepath.Join(pki, "node.crt"))[0]
		return len(bundle) == 2 && leaf.CheckSignatureFrom(bundle[0]) == nil && !bundle[0].Equal(oldCA),
			fmt.Sprintf("the node trusts %d CAs; its certificate is from %q", len(bundle), leaf.Issuer.CommonName)
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		cfg, err := os.ReadFile(c.configPath)
		return err == nil && strings.Count(string(cfg), "BEGIN CERTIFICATE") >= 3, "the admin config was not rewritten with both CAs"
	})
	c.mustBerth("get", "nodes")

	// Finishing waits until the node's record says it renewed.
	eventually(t, 60*time.Second, func() (bool, string) {
		out, errOut, err := c.berth("ca", "rotate", "--finish")
		return err == nil, fmt.Sprintf("berth ca rotate --finish: %v %s %s", err, out, errOut)
	})
	eventually(t, 60*time.Second, func() (bool, string) {
		bundle := pemCerts(t, filepath.Join(pki, "ca.crt"))
		return len(bundle) == 1 && !bundle[0].Equal(oldCA), fmt.Sprintf("the node trusts %d CAs after --finish", len(bundle))
	})
	// A fresh admin config: the one the server wrote for the new CA.
	eventually(t, 30*time.Second, func() (bool, string) {
		cfg, err := os.ReadFile(c.configPath)
		if err != nil || strings.Count(string(cfg), "BEGIN CERTIFICATE") != 2 {
			return false, "the admin config still trusts the old CA"
		}
		_, errOut, err := c.berth("get", "nodes")
		return err == nil, fmt.Sprintf("berth get nodes with the rewritten config: %v %s", err, errOut)
	})

	// The agent restarted after the old CA is gone still connects with
	// the certificate it renewed, and adopts its container.
	c.agents["alpha"].stop()
	p := c.startAgent("alpha")
	p.waitOutput(t, "connected to the control plane", 30*time.Second)
	if now := c.waitRunning("certs/web", 1, 60*time.Second)[0]; now.ID != task.ID {
		t.Fatalf("the task changed across the rotation: %s, was %s", now.ID, task.ID)
	}
}
