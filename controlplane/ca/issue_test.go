package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/identity"
)

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", certPEM)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return c
}

// verify checks c against a's CA for the given use and DNS name.
func verify(t *testing.T, a *Authority, c *x509.Certificate, usage x509.ExtKeyUsage, dnsName string) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, a.CACertPEM()))
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: dnsName})
	return err
}

func TestSignNodeForcesSubject(t *testing.T) {
	a, _ := openCA(t)
	_, csrPEM, err := identity.NewKeyAndCSR(identity.ServerName) // asks to be a server
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	certPEM, err := a.SignNode(csrPEM, "node-7f3a")
	if err != nil {
		t.Fatalf("SignNode: %v", err)
	}
	c := parseCert(t, certPEM)
	id, err := identity.FromCertificate(c)
	if err != nil {
		t.Fatalf("FromCertificate: %v", err)
	}
	if want := (identity.Identity{Role: identity.RoleNode, ID: "node-7f3a"}); id != want {
		t.Errorf("node certificate names %v, want %v", id, want)
	}
	if !slices.Equal(c.DNSNames, []string{"node-7f3a"}) || len(c.IPAddresses) != 0 {
		t.Errorf("node certificate names hosts %v %v, want only node-7f3a", c.DNSNames, c.IPAddresses)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if err := verify(t, a, c, usage, "node-7f3a"); err != nil {
			t.Errorf("node certificate does not verify for usage %v: %v", usage, err)
		}
	}
	if err := verify(t, a, c, x509.ExtKeyUsageServerAuth, identity.ServerName); err == nil {
		t.Errorf("node certificate verifies as %s", identity.ServerName)
	}
}

func TestSignNodeRejects(t *testing.T) {
	a, _ := openCA(t)
	_, goodCSR, err := identity.NewKeyAndCSR("n")
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	rsaCSR := csrFor(t, rsaKey)
	tampered := []byte(strings.Replace(string(goodCSR), string(goodCSR[100:104]), "AAAA", 1))
	tests := []struct {
		name   string
		csr    []byte
		nodeID string
		want   string
	}{
		{"empty node id", goodCSR, "", "cannot name a certificate"},
		{"dotted node id", goodCSR, "a.b", "cannot name a certificate"},
		{"leading dash", goodCSR, "-a", "cannot name a certificate"},
		{"too long", goodCSR, strings.Repeat("a", 64), "cannot name a certificate"},
		{"server name", goodCSR, identity.ServerName, "reserved for servers"},
		{"not PEM", []byte("hello"), "n1", "not a PEM CERTIFICATE REQUEST"},
		{"certificate instead of CSR", a.CACertPEM(), "n1", "not a PEM CERTIFICATE REQUEST"},
		{"tampered", tampered, "n1", "certificate request"},
		{"RSA key", rsaCSR, "n1", "use ECDSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.SignNode(tt.csr, tt.nodeID)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SignNode error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func csrFor(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignNodeAcceptsOtherCurves(t *testing.T) {
	a, _ := openCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	if _, err := a.SignNode(csrFor(t, key), "n1"); err != nil {
		t.Errorf("SignNode with a P-384 key: %v", err)
	}
}

func TestIssueServer(t *testing.T) {
	a, _ := openCA(t)
	certPEM, keyPEM, err := a.IssueServer([]string{"10.1.2.3", "cp1.example", "", "::1"})
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	if len(keyPEM) == 0 {
		t.Fatalf("IssueServer returned no key")
	}
	c := parseCert(t, certPEM)
	id, err := identity.FromCertificate(c)
	if err != nil {
		t.Fatalf("FromCertificate: %v", err)
	}
	if want := (identity.Identity{Role: identity.RoleServer, ID: "10.1.2.3"}); id != want {
		t.Errorf("server certificate names %v, want %v", id, want)
	}
	if want := []string{identity.ServerName, "cp1.example"}; !slices.Equal(c.DNSNames, want) {
		t.Errorf("DNS names = %v, want %v", c.DNSNames, want)
	}
	if len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP addresses = %v, want [10.1.2.3 ::1]", c.IPAddresses)
	}
	for _, name := range []string{identity.ServerName, "cp1.example", "10.1.2.3"} {
		if err := verify(t, a, c, x509.ExtKeyUsageServerAuth, name); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	if err := verify(t, a, c, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("server certificate is not a client certificate: %v", err)
	}

	bare, _, err := a.IssueServer(nil)
	if err != nil {
		t.Fatalf("IssueServer(nil): %v", err)
	}
	if got := parseCert(t, bare).Subject.CommonName; got != identity.ServerName {
		t.Errorf("server certificate without hosts has common name %q, want %q", got, identity.ServerName)
	}
}

func TestIssueAdmin(t *testing.T) {
	a, _ := openCA(t)
	certPEM, _, err := a.IssueAdmin()
	if err != nil {
		t.Fatalf("IssueAdmin: %v", err)
	}
	c := parseCert(t, certPEM)
	id, err := identity.FromCertificate(c)
	if err != nil {
		t.Fatalf("FromCertificate: %v", err)
	}
	if id.Role != identity.RoleAdmin {
		t.Errorf("admin certificate has role %q", id.Role)
	}
	if err := verify(t, a, c, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("admin certificate is not a client certificate: %v", err)
	}
	if err := verify(t, a, c, x509.ExtKeyUsageServerAuth, ""); err == nil {
		t.Errorf("admin certificate can serve")
	}
}

func TestSignUser(t *testing.T) {
	a, _ := openCA(t)
	_, csrPEM, err := identity.NewKeyAndCSR("admin") // asks for another name
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	certPEM, err := a.SignUser(csrPEM, "alice", identity.RoleDeployer, []string{"team-a", "team-b"}, 48*time.Hour)
	if err != nil {
		t.Fatalf("SignUser: %v", err)
	}
	c := parseCert(t, certPEM)
	id, err := identity.FromCertificate(c)
	if err != nil {
		t.Fatalf("FromCertificate: %v", err)
	}
	if want := (identity.Identity{Role: identity.RoleDeployer, ID: "alice"}); id != want {
		t.Errorf("user certificate names %v, want %v", id, want)
	}
	if got := identity.Namespaces(c); !slices.Equal(got, []string{"team-a", "team-b"}) {
		t.Errorf("namespaces = %v, want [team-a team-b]", got)
	}
	if err := verify(t, a, c, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("not a valid client certificate: %v", err)
	}
	if err := verify(t, a, c, x509.ExtKeyUsageServerAuth, ""); err == nil {
		t.Error("a user certificate must not serve")
	}
	if life := c.NotAfter.Sub(c.NotBefore); life > 48*time.Hour+backdate+time.Minute {
		t.Errorf("lifetime %s, want 48h", life)
	}
	if _, err := a.SignUser(csrPEM, "bob", identity.RoleNode, nil, 0); err == nil {
		t.Error("SignUser signed a node certificate")
	}
}
