package identity

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ServerName is a DNS name that every server certificate carries besides the
// hosts it was issued for. Clients verify servers under this name (ClientTLS
// uses it when given no server name), so a server is trusted whatever
// address it is dialed by: an IP, a load balancer or a name missing from its
// certificate. Only the cluster CA issues certificates, it never puts this
// name in a node or admin certificate, and ClientTLS also checks that a peer
// verified under this name has the server role.
const ServerName = "berth-server"

// ErrCAMismatch is returned (wrapped) by the BootstrapTLS handshake when the
// server does not prove that it belongs to the cluster the join token names.
var ErrCAMismatch = errors.New("the server's CA does not match the join token (wrong cluster or tampered token)")

// ServerTLS is the TLS configuration of a listener that serves Berth gRPC
// with certPEM/keyPEM. Client certificates are requested and, when sent,
// verified against the cluster CA (caPEM); they stay optional because an
// agent calls Join before it has one. Handlers decide what each caller may
// do with FromContext. Callers that must refuse anonymous peers set
// ClientAuth to tls.RequireAndVerifyClientCert on the result.
//
// The CA certificate is appended to the presented chain so that a joining
// agent, which does not know the CA yet, can check it against its token.
func ServerTLS(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pool, caDERs, err := parseCAs(caPEM)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load server certificate and key: %w", err)
	}
	for _, der := range caDERs {
		if !containsDER(cert.Certificate, der) {
			cert.Certificate = append(cert.Certificate, der)
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}, nil
}

// ClientTLS is the TLS configuration of a client of a Berth server or agent:
// it verifies the peer against the cluster CA (caPEM) and presents
// certPEM/keyPEM, if given, as its client certificate.
//
// serverName is the name the peer's certificate must carry. Empty means
// ServerName, for dialing any server of the cluster by any address; the
// peer must then also hold the server role. To dial an agent, pass its node
// id: node certificates carry it as their DNS name.
func ClientTLS(certPEM, keyPEM, caPEM []byte, serverName string) (*tls.Config, error) {
	pool, _, err := parseCAs(caPEM)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: serverName,
	}
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load client certificate and key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if serverName == "" || serverName == ServerName {
		cfg.ServerName = ServerName
		cfg.VerifyConnection = requireServerRole
	}
	return cfg, nil
}

// BootstrapTLS is the TLS configuration an agent uses to call Join: it has
// no client certificate and does not know the CA yet, so it trusts the
// server only if the presented chain holds a CA certificate whose CADigest
// is the token's, and the server's certificate is signed by that CA and has
// the server role. The token secret is sent only over such a connection.
func BootstrapTLS(t Token) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: ServerName,
		// The chain is verified by VerifyConnection against the pinned CA
		// digest instead of a root pool, which the agent does not have.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinnedChain(cs.PeerCertificates, t.CADigest)
		},
	}
}

// VerifyCA checks that caPEM, the CA trust bundle a server returned from
// Join, holds the CA the token names, before the agent stores it as what
// it trusts. During a CA rollover the bundle holds the new CA and the
// previous one; a token made before the rotation names the previous one.
func (t Token) VerifyCA(caPEM []byte) error {
	var got []string
	for rest := caPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		d := CADigest(block.Bytes)
		if d == t.CADigest {
			return nil
		}
		got = append(got, d)
	}
	if len(got) == 0 {
		return fmt.Errorf("%w: the server returned no PEM CA certificate", ErrCAMismatch)
	}
	return fmt.Errorf("%w: the token expects CA digest %s, the server returned %s", ErrCAMismatch, t.CADigest, strings.Join(got, ", "))
}

func verifyPinnedChain(chain []*x509.Certificate, caDigest string) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: the server presented no certificate", ErrCAMismatch)
	}
	leaf := chain[0]
	var ca *x509.Certificate
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		if ca == nil && c.IsCA && CADigest(c.Raw) == caDigest {
			ca = c
			continue
		}
		intermediates.AddCert(c)
	}
	if ca == nil {
		presented := "none"
		if last := chain[len(chain)-1]; len(chain) > 1 {
			presented = CADigest(last.Raw)
		}
		return fmt.Errorf("%w: the token expects CA digest %s, the server presented %s", ErrCAMismatch, caDigest, presented)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("%w: the server's certificate is not valid under the token's CA: %w", ErrCAMismatch, err)
	}
	if id, err := FromCertificate(leaf); err != nil || id.Role != RoleServer {
		return fmt.Errorf("%w: the peer's certificate is not a server certificate", ErrCAMismatch)
	}
	return nil
}

func requireServerRole(cs tls.ConnectionState) error {
	id, ok := FromConnectionState(cs)
	if !ok || id.Role != RoleServer {
		return fmt.Errorf("the peer's certificate is valid for %s but is not a server certificate (role %q)", ServerName, id.Role)
	}
	return nil
}

// parseCAs reads every certificate in caPEM into a pool, and also returns
// their DER forms.
func parseCAs(caPEM []byte) (*x509.CertPool, [][]byte, error) {
	pool := x509.NewCertPool()
	var ders [][]byte
	rest := caPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parse cluster CA certificate: %w", err)
		}
		pool.AddCert(c)
		ders = append(ders, block.Bytes)
	}
	if len(ders) == 0 {
		return nil, nil, errors.New("no cluster CA certificate given (expected PEM \"CERTIFICATE\" blocks)")
	}
	return pool, ders, nil
}

func containsDER(chain [][]byte, der []byte) bool {
	for _, c := range chain {
		if bytes.Equal(c, der) {
			return true
		}
	}
	return false
}
