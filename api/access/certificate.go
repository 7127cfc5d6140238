package access

import (
	"crypto/x509"
	"slices"

	"github.com/berthproject/berth/api/identity"
)

// FromCertificate is the principal a verified Berth certificate names:
// its role from the Organization, its name from the common name, its
// namespaces from the "namespace=<ns>" OrganizationalUnit entries (none:
// every namespace, as for the admin certificate `berth server` writes).
// Kind is "user" for people (admin, deployer, viewer), else the role.
func FromCertificate(c *x509.Certificate) (Principal, error) {
	id, err := identity.FromCertificate(c)
	if err != nil {
		return Principal{}, err
	}
	kind := "user"
	if id.Role == identity.RoleNode || id.Role == identity.RoleServer {
		kind = string(id.Role)
	}
	return Principal{
		Kind: kind, Name: id.ID, Role: id.Role,
		Namespaces: identity.Namespaces(c), Serial: identity.Serial(c),
	}, nil
}

// Allowed lists the short names of the methods of service (a full service
// name prefix such as "/berth.v1.ClusterService/") that p may call in some
// namespace, sorted: what WhoAmI answers.
func Allowed(p Principal, service string) []string {
	q := p
	q.Namespaces = nil
	var out []string
	for m := range Methods {
		if len(m) > len(service) && m[:len(service)] == service && Check(q, m, "") == nil {
			out = append(out, ShortName(m))
		}
	}
	slices.Sort(out)
	return out
}
