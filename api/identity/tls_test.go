package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestTLSConfigInputErrors(t *testing.T) {
	keyPEM, _, err := NewKeyAndCSR("x")
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	tests := []struct {
		name string
		make func() error
		want string
	}{
		{"server without CA", func() error { _, err := ServerTLS(nil, keyPEM, nil); return err }, "no cluster CA certificate given"},
		{"client without CA", func() error { _, err := ClientTLS(nil, nil, []byte("junk"), ""); return err }, "no cluster CA certificate given"},
		{"server with key only", func() error { _, err := ServerTLS(nil, keyPEM, testCAPEM(t)); return err }, "load server certificate and key"},
		{"client with key only", func() error { _, err := ClientTLS(nil, keyPEM, testCAPEM(t), ""); return err }, "load client certificate and key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.make()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestClientTLSServerName(t *testing.T) {
	for _, name := range []string{"", ServerName} {
		cfg, err := ClientTLS(nil, nil, testCAPEM(t), name)
		if err != nil {
			t.Fatalf("ClientTLS: %v", err)
		}
		if cfg.ServerName != ServerName || cfg.VerifyConnection == nil {
			t.Errorf("ClientTLS(%q): ServerName %q, role check set %v; want %q and a role check", name, cfg.ServerName, cfg.VerifyConnection != nil, ServerName)
		}
		if cfg.MinVersion != tls.VersionTLS13 {
			t.Errorf("ClientTLS(%q) allows TLS below 1.3", name)
		}
	}
	cfg, err := ClientTLS(nil, nil, testCAPEM(t), "node-1")
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	if cfg.ServerName != "node-1" || cfg.VerifyConnection != nil {
		t.Errorf("ClientTLS(node-1): ServerName %q, role check set %v", cfg.ServerName, cfg.VerifyConnection != nil)
	}
}

func TestVerifyPinnedChainWithoutCA(t *testing.T) {
	leaf := &x509.Certificate{Raw: []byte("leaf")}
	for _, chain := range [][]*x509.Certificate{nil, {leaf}} {
		err := verifyPinnedChain(chain, CADigest([]byte("ca")))
		if !errors.Is(err, ErrCAMismatch) {
			t.Errorf("verifyPinnedChain(%d certificates) = %v, want ErrCAMismatch", len(chain), err)
		}
	}
}

// testCAPEM makes a self-signed CA certificate. The full PKI is exercised
// with real handshakes in controlplane/ca; these tests need only a CA.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
