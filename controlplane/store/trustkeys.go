package store

import "net/url"

// Keys of trusted images: signing keys (private halves sealed) and trust
// policies, by namespace.
const (
	// SigningKeysPrefix holds one SigningKey per namespace and name.
	SigningKeysPrefix = Root + "signing-keys/"
	// TrustPoliciesPrefix holds one TrustPolicy per namespace and pattern.
	TrustPoliciesPrefix = Root + "trust-policies/"
)

// SigningKeyKey is where key name of namespace is stored.
func SigningKeyKey(namespace, name string) string {
	return SigningKeysPrefix + namespace + "/" + name
}

// TrustPolicyKey is where the policy of pattern in namespace is stored;
// the pattern (which has slashes) is escaped into one segment.
func TrustPolicyKey(namespace, pattern string) string {
	return TrustPoliciesPrefix + namespace + "/" + url.PathEscape(pattern)
}
