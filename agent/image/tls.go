package image

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/berthproject/berth/api/identity"
)

// ServerTLS is the TLS configuration of a node's content server: the node
// certificate, and a client certificate signed by the cluster CA required
// of every caller. It follows creds through renewals and CA rotations.
func ServerTLS(creds *identity.Live) *tls.Config {
	cfg := creds.ServerTLS(nil, nil)
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg
}

// PeerTLS is the TLS configuration for fetching from other nodes' content
// servers with this node's certificate. A puller knows a peer by its
// content address only, not its node id (the name its certificate
// carries), so the chain is checked against the cluster CA and the
// certificate must be a node's, whatever its name. It follows creds
// through renewals and CA rotations.
func PeerTLS(creds *identity.Live) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return creds.Certificate(), nil
		},
		// Verification is done by VerifyConnection below, which checks
		// the chain but not the host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, creds.Roots())
		},
	}
}

func verifyPeer(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("the peer's certificate is not from this cluster's CA: %w", err)
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return err
	}
	if id.Role != identity.RoleNode {
		return fmt.Errorf("the peer's certificate is a %s's, not a node's", id.Role)
	}
	return nil
}
