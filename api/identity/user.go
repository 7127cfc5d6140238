package identity

import (
	"crypto/x509"
	"fmt"
	"strings"
)

// NamespaceUnitPrefix starts each subject OrganizationalUnit of a user
// certificate that names a namespace its holder may act in
// ("namespace=team-a"). A user certificate with none may act in every
// namespace, as the admin certificate `berth server` writes.
const NamespaceUnitPrefix = "namespace="

// NamespaceUnits are the OrganizationalUnit entries that grant namespaces.
func NamespaceUnits(namespaces []string) []string {
	out := make([]string, len(namespaces))
	for i, ns := range namespaces {
		out[i] = NamespaceUnitPrefix + ns
	}
	return out
}

// Namespaces reads the namespaces a certificate grants (its
// "namespace=<ns>" OrganizationalUnit entries); none means every namespace.
// Like FromCertificate it trusts a certificate a handshake verified.
func Namespaces(c *x509.Certificate) []string {
	var out []string
	for _, ou := range c.Subject.OrganizationalUnit {
		if ns, ok := strings.CutPrefix(ou, NamespaceUnitPrefix); ok && ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

// Serial is a certificate's serial number in lower-case hex: how revoked
// certificates, users and nodes name it.
func Serial(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return fmt.Sprintf("%x", c.SerialNumber)
}
