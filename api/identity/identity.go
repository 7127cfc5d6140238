// Package identity holds the pieces of Berth's cluster PKI that servers,
// agents and the CLI share: who a certificate names (role and id), join
// tokens, key and CSR generation, and the TLS configurations each side uses.
//
// Every certificate issued by a cluster CA carries its holder's role in the
// subject's Organization ("berth-server", "berth-node" or "berth-admin") and
// its id in the CommonName (the node id for nodes). The package has no state
// and no storage; the CA itself lives in controlplane/ca.
package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is what a certificate holder may do in the cluster.
type Role string

// The roles a cluster CA issues certificates for.
const (
	// RoleServer is a control plane server. Its certificate serves the API and
	// is also used as a client certificate when a server calls an agent.
	RoleServer Role = "server"
	// RoleNode is an agent, named by its node id.
	RoleNode Role = "node"
	// RoleAdmin is an operator using the CLI or the API directly: the
	// certificate `berth server` writes, or a user's made by `berth user
	// create --role admin`.
	RoleAdmin Role = "admin"
	// RoleDeployer is a user who may change what runs in its namespaces.
	RoleDeployer Role = "deployer"
	// RoleViewer is a user who may read what is in its namespaces.
	RoleViewer Role = "viewer"
)

// organizationPrefix turns a role into the certificate Organization that
// encodes it, so that a Berth certificate is recognisable at a glance in
// `openssl x509 -text`.
const organizationPrefix = "berth-"

// Organization is the certificate subject Organization that encodes r.
func (r Role) Organization() string { return organizationPrefix + string(r) }

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleServer, RoleNode, RoleAdmin, RoleDeployer, RoleViewer:
		return true
	}
	return false
}

// Identity is who a certificate names.
type Identity struct {
	Role Role
	// ID is the certificate's CommonName: the node id for nodes.
	ID string
}

// String renders the identity as role/id, for logs and error messages.
func (i Identity) String() string { return string(i.Role) + "/" + i.ID }

// FromCertificate reads the identity a Berth certificate names. It does not
// verify the certificate: callers pass certificates that a TLS handshake has
// already verified against the cluster CA.
func FromCertificate(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, errors.New("no certificate to read an identity from")
	}
	var role Role
	for _, org := range c.Subject.Organization {
		r, ok := strings.CutPrefix(org, organizationPrefix)
		if !ok || !Role(r).Valid() {
			continue
		}
		if role != "" && role != Role(r) {
			return Identity{}, fmt.Errorf("certificate %q names two roles (%s and %s); it was not issued by a Berth CA", c.Subject.CommonName, role, r)
		}
		role = Role(r)
	}
	if role == "" {
		return Identity{}, fmt.Errorf("certificate %q names no Berth role (organization %q); it was not issued by a Berth CA",
			c.Subject.CommonName, c.Subject.Organization)
	}
	if c.Subject.CommonName == "" {
		return Identity{}, fmt.Errorf("%s certificate has an empty common name; it was not issued by a Berth CA", role)
	}
	return Identity{Role: role, ID: c.Subject.CommonName}, nil
}

// FromConnectionState reads the identity of a TLS peer whose certificate
// chain was verified. It reports false when the peer sent no certificate (as
// an agent calling Join does) or the certificate names no Berth identity.
func FromConnectionState(cs tls.ConnectionState) (Identity, bool) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	id, err := FromCertificate(cs.VerifiedChains[0][0])
	if err != nil {
		return Identity{}, false
	}
	return id, true
}

// FromContext reads the identity of the caller of a gRPC method served with
// ServerTLS. It reports false when the connection is not TLS or the caller
// sent no verified client certificate.
func FromContext(ctx context.Context) (Identity, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, false
	}
	return FromConnectionState(info.State)
}
