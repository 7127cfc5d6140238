package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/berthproject/berth/api/identity"
)

// leaf describes a certificate to issue.
type leaf struct {
	role     identity.Role
	id       string
	dnsNames []string
	ips      []net.IP
	usages   []x509.ExtKeyUsage
	// units are OrganizationalUnit entries after the cluster id (a
	// user's namespaces).
	units []string
	// lifetime is how long the certificate is valid; zero is the
	// authority's leaf lifetime (a year by default).
	lifetime time.Duration
}

// IssueServer makes a key and a certificate for a control plane server,
// valid for the authority's leaf lifetime (a year by default). The certificate names identity.ServerName and every
// host given (IP addresses and DNS names), so clients can verify it under
// the fixed name or the address they dial; its common name is the first
// host, or identity.ServerName when none is given. It serves the API and
// also authenticates the server when it calls agents.
func (a *Authority) IssueServer(hosts []string) (certPEM, keyPEM []byte, err error) {
	l := leaf{
		role:     identity.RoleServer,
		dnsNames: []string{identity.ServerName},
		usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if l.id == "" {
			l.id = h
		}
		if ip := net.ParseIP(h); ip != nil {
			l.ips = append(l.ips, ip)
		} else if !slices.Contains(l.dnsNames, h) {
			l.dnsNames = append(l.dnsNames, h)
		}
	}
	if l.id == "" {
		l.id = identity.ServerName
	}
	return a.issueWithKey(l)
}

// IssueAdmin makes a key and a client certificate for an operator (the
// CLI), valid for the authority's leaf lifetime (a year by default).
func (a *Authority) IssueAdmin() (certPEM, keyPEM []byte, err error) {
	return a.issueWithKey(leaf{
		role:   identity.RoleAdmin,
		id:     "admin",
		usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// SignNode signs an agent's certificate request, valid for the authority's leaf lifetime (a year by default). The
// CA decides the subject: the common name and the only DNS name are nodeID,
// whatever the request asked for, and the role is node. The certificate
// authenticates the agent to servers and serves the agent's own endpoint
// (dial it with the node id as server name).
func (a *Authority) SignNode(csrPEM []byte, nodeID string) (certPEM []byte, err error) {
	if err := checkNodeID(nodeID); err != nil {
		return nil, err
	}
	pub, err := requestKey(csrPEM)
	if err != nil {
		return nil, err
	}
	return a.sign(leaf{
		role:     identity.RoleNode,
		id:       nodeID,
		dnsNames: []string{nodeID},
		usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, pub)
}

// SignUser signs the certificate request of a person, made by `berth user
// create`: CN name, Organization berth-<role>, one OrganizationalUnit
// "namespace=<ns>" per namespace (none: every namespace), client
// authentication only, valid for ttl (zero: a year; never past the CA's
// own expiry). The CA decides the subject whatever the request asked for.
func (a *Authority) SignUser(csrPEM []byte, name string, role identity.Role, namespaces []string, ttl time.Duration) (certPEM []byte, err error) {
	switch role {
	case identity.RoleViewer, identity.RoleDeployer, identity.RoleAdmin:
	default:
		return nil, fmt.Errorf("role %q is not a user role: use viewer, deployer or admin", role)
	}
	if name == "" {
		return nil, errors.New("a user certificate needs a name")
	}
	pub, err := requestKey(csrPEM)
	if err != nil {
		return nil, err
	}
	return a.sign(leaf{
		role:     role,
		id:       name,
		usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		units:    identity.NamespaceUnits(namespaces),
		lifetime: ttl,
	}, pub)
}

// requestKey checks a PEM certificate request and returns its public key.
func requestKey(csrPEM []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("certificate request is not a PEM CERTIFICATE REQUEST block; make it with identity.NewKeyAndCSR")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature is invalid: %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr.PublicKey, nil
}

func (a *Authority) issueWithKey(l leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", l.role, err)
	}
	certPEM, err = a.sign(l, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s key: %w", l.role, err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// sign issues l for pub. The PEM holds the certificate and, during a
// rollover, the cross-signed CA certificate after it, so that peers that
// trust only the previous CA verify it.
func (a *Authority) sign(l leaf, pub crypto.PublicKey) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	st := a.state()
	now := a.clock()
	lifetime := l.lifetime
	if lifetime <= 0 {
		lifetime = a.lifetime
	}
	notAfter := now.Add(lifetime)
	// A leaf never outlives its CA: verifiers would reject the tail anyway.
	if notAfter.After(st.cert.NotAfter) {
		notAfter = st.cert.NotAfter
	}
	// Short lifetimes (tests) get a backdate in proportion, or the
	// holder would find two thirds of it gone at once.
	back := min(backdate, a.lifetime/10)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{l.role.Organization()},
			OrganizationalUnit: append([]string{st.clusterID}, l.units...),
			CommonName:         l.id,
		},
		NotBefore:   now.Add(-back),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: l.usages,
		DNSNames:    l.dnsNames,
		IPAddresses: l.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, st.cert, pub, st.key)
	if err != nil {
		return nil, fmt.Errorf("sign %s certificate for %q: %w", l.role, l.id, err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), st.crossPEM...), nil
}

// checkNodeID accepts ids that are valid DNS labels, since the id is the
// node certificate's DNS name, and refuses the name reserved for servers so
// that a node certificate can never pass for a server's.
func checkNodeID(id string) error {
	if id == identity.ServerName {
		return fmt.Errorf("node id %q is reserved for servers", id)
	}
	valid := len(id) > 0 && len(id) <= 63 && id[0] != '-' && id[len(id)-1] != '-'
	for i := 0; valid && i < len(id); i++ {
		c := id[i]
		valid = c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
	}
	if !valid {
		return fmt.Errorf("node id %q cannot name a certificate: use 1 to 63 letters, digits and inner dashes", id)
	}
	return nil
}

// checkPublicKey refuses keys weaker than the cluster's own.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() || k.Curve == elliptic.P521() {
			return nil
		}
		return fmt.Errorf("certificate request uses ECDSA curve %s; use P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("certificate request uses a %T key; use ECDSA (as identity.NewKeyAndCSR does) or Ed25519", pub)
	}
}
