package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Live is the certificate, key and CA trust bundle a process serves and
// dials with, swapped atomically when its certificate is renewed or the
// cluster CA rotates. The TLS configurations made from it read the current
// ones at every handshake, so neither listeners nor clients restart.
type Live struct {
	st atomic.Pointer[liveState]
}

type liveState struct {
	// cert presents the leaf, the intermediates that came with it, then
	// the CA certificates, so that a joining agent can check the chain
	// against its token (see ServerTLS).
	cert                   tls.Certificate
	leaf                   *x509.Certificate
	pool                   *x509.CertPool
	certPEM, keyPEM, caPEM []byte
}

// NewLive returns a Live holding certPEM (the leaf, then any
// intermediates), keyPEM and the trust bundle caPEM.
func NewLive(certPEM, keyPEM, caPEM []byte) (*Live, error) {
	l := &Live{}
	if err := l.Update(certPEM, keyPEM, caPEM); err != nil {
		return nil, err
	}
	return l, nil
}

// Update swaps in a new certificate, key and trust bundle, after checking
// that they belong together: the key is the certificate's and the
// certificate chains to the bundle. Connections already open keep theirs.
func (l *Live) Update(certPEM, keyPEM, caPEM []byte) error {
	pool, caDERs, err := parseCAs(caPEM)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load certificate and key: %w", err)
	}
	leaf := cert.Leaf
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("parse intermediate certificate: %w", err)
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the certificate of %q is not valid under the cluster CA: %w", leaf.Subject.CommonName, err)
	}
	for _, der := range caDERs {
		if !containsDER(cert.Certificate, der) {
			cert.Certificate = append(cert.Certificate, der)
		}
	}
	l.st.Store(&liveState{cert: cert, leaf: leaf, pool: pool, certPEM: certPEM, keyPEM: keyPEM, caPEM: caPEM})
	return nil
}

// UpdateTrust swaps in a new trust bundle and keeps the certificate.
func (l *Live) UpdateTrust(caPEM []byte) error {
	st := l.st.Load()
	return l.Update(st.certPEM, st.keyPEM, caPEM)
}

// Leaf is the certificate in use.
func (l *Live) Leaf() *x509.Certificate { return l.st.Load().leaf }

// PEM returns the certificate (with its intermediates), key and trust
// bundle in use.
func (l *Live) PEM() (certPEM, keyPEM, caPEM []byte) {
	st := l.st.Load()
	return st.certPEM, st.keyPEM, st.caPEM
}

// NotAfter is when the certificate in use expires; a metric reads it.
func (l *Live) NotAfter() time.Time { return l.Leaf().NotAfter }

// ServerTLS is ServerTLS's configuration, reading the certificate and the
// trust bundle at each handshake. nextProtos are the ALPN protocols served
// ("h2" for gRPC). revoked, when not nil, is the deny-list: a client
// certificate whose serial (SerialHex) it reports is refused. Callers that
// must refuse anonymous peers set ClientAuth on the result before using
// it.
func (l *Live) ServerTLS(nextProtos []string, revoked func(serial string) bool) *tls.Config {
	deny := denyRevoked(revoked)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: nextProtos,
		ClientAuth: tls.VerifyClientCertIfGiven,
	}
	// Servers clone their configuration (gRPC, net/http); the clones
	// share this function, which reads the original.
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		st := l.st.Load()
		return &tls.Config{
			MinVersion:       tls.VersionTLS13,
			NextProtos:       nextProtos,
			Certificates:     []tls.Certificate{st.cert},
			ClientCAs:        st.pool,
			ClientAuth:       cfg.ClientAuth,
			VerifyConnection: deny,
		}, nil
	}
	return cfg
}

// Certificate is the certificate in use, as a client presents it.
func (l *Live) Certificate() *tls.Certificate { return &l.st.Load().cert }

// Roots is the trust bundle in use as a pool, for callers that verify
// peers by hand.
func (l *Live) Roots() *x509.CertPool { return l.st.Load().pool }

// denyRevoked is the VerifyConnection check of the deny-list.
func denyRevoked(revoked func(string) bool) func(tls.ConnectionState) error {
	if revoked == nil {
		return nil
	}
	return func(cs tls.ConnectionState) error {
		for _, c := range cs.PeerCertificates[:min(1, len(cs.PeerCertificates))] {
			if serial := SerialHex(c); revoked(serial) {
				return fmt.Errorf("certificate %s of %q is revoked (its node or user was removed)", serial, c.Subject.CommonName)
			}
		}
		return nil
	}
}

// ClientTLS is ClientTLS's configuration, presenting the current
// certificate and verifying the peer against the current trust bundle.
// serverName is as for ClientTLS.
func (l *Live) ClientTLS(serverName string) *tls.Config {
	if serverName == "" {
		serverName = ServerName
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return l.Certificate(), nil
		},
		// The roots change with the trust bundle, which a tls.Config
		// cannot follow: VerifyConnection verifies the chain instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs.PeerCertificates, l.st.Load().pool, serverName)
		},
	}
}

// verifyServer is the verification crypto/tls does for a client, by hand:
// the chain against roots, the name, the usage, and for ServerName the
// server role.
func verifyServer(chain []*x509.Certificate, roots *x509.CertPool, serverName string) error {
	if len(chain) == 0 {
		return errors.New("the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: serverName,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("the peer's certificate is not valid: %w", err)
	}
	if serverName == ServerName {
		return requireServerRole(tls.ConnectionState{VerifiedChains: chains})
	}
	return nil
}
