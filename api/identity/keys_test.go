package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestNewKeyAndCSR(t *testing.T) {
	keyPEM, csrPEM, err := NewKeyAndCSR("worker-1")
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("key is not a PEM PRIVATE KEY block: %q", keyPEM)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatalf("parse key: %v", err)
	}
	cb, _ := pem.Decode(csrPEM)
	if cb == nil || cb.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("CSR is not a PEM CERTIFICATE REQUEST block: %q", csrPEM)
	}
	csr, err := x509.ParseCertificateRequest(cb.Bytes)
	if err != nil {
		t.Fatalf("parse CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if csr.Subject.CommonName != "worker-1" {
		t.Errorf("CSR common name = %q, want worker-1", csr.Subject.CommonName)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(csr.PublicKey) {
		t.Errorf("CSR is not for the returned key")
	}
}
