package session

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/internal/testca"
)

// testCA issues node certificates like the cluster CA does.
type testCA struct{ *testca.CA }

func newTestCA(t *testing.T) *testCA { return &testCA{testca.New(t)} }

// sign signs csrPEM for node id.
func (ca *testCA) sign(t *testing.T, csrPEM []byte, id string, serial int64) []byte {
	t.Helper()
	block, _ := pem.Decode(csrPEM)
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{Organization: []string{identity.RoleNode.Organization()}, CommonName: id},
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames: []string{id},
	}, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// joined writes a joined node's credentials to a new dir.
func joined(t *testing.T, ca *testCA, id string) (string, *Credentials) {
	t.Helper()
	keyPEM, csrPEM, err := identity.NewKeyAndCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	c := &Credentials{NodeID: id, Cert: ca.sign(t, csrPEM, id, 2), Key: keyPEM, CA: ca.PEM}
	dir := t.TempDir()
	if err := save(dir, c); err != nil {
		t.Fatal(err)
	}
	return dir, c
}

func TestRenewalInstalls(t *testing.T) {
	ca := newTestCA(t)
	dir, creds := joined(t, ca, "node-1")
	live, err := identity.NewLive(creds.Cert, creds.Key, creds.CA)
	if err != nil {
		t.Fatal(err)
	}
	c := &certs{live: live, dir: dir, nodeID: "node-1", log: slog.New(slog.DiscardHandler)}
	now := time.Now()

	msg, err := c.request()
	if err != nil || msg == nil {
		t.Fatalf("request: %v, %v", msg, err)
	}
	if again, _ := c.request(); again != nil {
		t.Error("a second request went out while one is in flight")
	}
	csr := msg.GetRenewCertificate().GetCsr()
	renewed := ca.sign(t, csr, "node-1", 3)
	if err := c.renewed(&berthv1.CertificateRenewal{Certificate: renewed, TrustBundle: ca.PEM}, now); err != nil {
		t.Fatalf("renewed: %v", err)
	}
	if got := identity.SerialHex(live.Leaf()); got != "3" {
		t.Errorf("certificate in use has serial %s, want 3", got)
	}
	loaded, err := load(dir)
	if err != nil || string(loaded.Cert) != string(renewed) {
		t.Fatalf("the data dir holds another certificate (%v)", err)
	}

	// A certificate for another node is refused, and the old one stays.
	msg, _ = c.request()
	other := ca.sign(t, msg.GetRenewCertificate().GetCsr(), "node-2", 4)
	if err := c.renewed(&berthv1.CertificateRenewal{Certificate: other, TrustBundle: ca.PEM}, now); err == nil || !strings.Contains(err.Error(), "node-2") {
		t.Errorf("a certificate of node-2: %v, want refused", err)
	}
	if got := identity.SerialHex(live.Leaf()); got != "3" {
		t.Errorf("after a refused certificate the serial in use is %s, want 3", got)
	}
	if d := c.due(now); d <= 0 || d > renewRetry {
		t.Errorf("after a failure the next try is in %s, want within %s", d, renewRetry)
	}

	// A refusal from the control plane also waits before trying again.
	c.retryAt = time.Time{}
	c.request()
	if err := c.renewed(&berthv1.CertificateRenewal{Error: "no"}, now); err == nil {
		t.Error("a refusal reported no error")
	}
	if d := c.due(now); d <= 0 {
		t.Errorf("after a refusal the next try is in %s, want later", d)
	}
}

// TestRenewalCutShort finds the credentials whole when a renewal stopped
// after the key was replaced and before the certificate was.
func TestRenewalCutShort(t *testing.T) {
	ca := newTestCA(t)
	dir, _ := joined(t, ca, "node-1")
	keyPEM, csrPEM, err := identity.NewKeyAndCSR("node-1")
	if err != nil {
		t.Fatal(err)
	}
	renewed := ca.sign(t, csrPEM, "node-1", 5)
	if err := writeAtomic(filepath.Join(dir, certFile+".next"), renewed); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(filepath.Join(dir, keyFile), keyPEM); err != nil {
		t.Fatal(err)
	}
	c, err := load(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if _, err := identity.NewLive(c.Cert, c.Key, c.CA); err != nil {
		t.Fatalf("the loaded certificate and key do not belong together: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, certFile+".next")); !os.IsNotExist(err) {
		t.Errorf("the certificate written aside is still there: %v", err)
	}
}
