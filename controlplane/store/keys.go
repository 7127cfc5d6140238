// Package store is Berth's typed access to etcd: protobuf objects under
// /berth/, transactions guarded by mod revision, batched updates, and a
// watch-fed cache that control-plane components read and react to.
package store

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
)

// Key prefixes. Everything Berth stores lives under Root.
const (
	Root           = "/berth/"
	NodesPrefix    = Root + "nodes/"
	ServicesPrefix = Root + "services/"
	TasksPrefix    = Root + "tasks/"
	EventsPrefix   = Root + "events/"
	CAKey          = Root + "pki/ca"
	TokensPrefix   = Root + "pki/tokens/"
	SubnetsPrefix  = Root + "subnets/"
	LeaderPrefix   = Root + "leader/"
	// ServersPrefix holds one ServerInfo per running server, on a lease
	// that ends with it.
	ServersPrefix = Root + "servers/"
	// RegistriesPrefix holds one RegistryCredential per registry.
	RegistriesPrefix = Root + "registries/"
	// NetworksPrefix holds one Network per network, by namespace and name.
	NetworksPrefix = Root + "networks/"
	// NetworkSubnetsPrefix holds one claim per network subnet, so that two
	// applies on two servers never give two networks the same subnet.
	NetworkSubnetsPrefix = Root + "network-subnets/"
	// VolumesPrefix holds one Volume per named volume of a slot, by
	// namespace and name.
	VolumesPrefix = Root + "volumes/"
	// SecretsPrefix and ConfigsPrefix hold one Secret (sealed) and one
	// Config per name, by namespace.
	SecretsPrefix = Root + "secrets/"
	ConfigsPrefix = Root + "configs/"
	// KeyCheckKey holds the KeyCheck that tells a server whether its
	// key-encryption key is the cluster's.
	KeyCheckKey = Root + "pki/kek"
	// SettingsKey holds the cluster's ClusterSettings; when it is absent
	// every setting has its default.
	SettingsKey = Root + "settings"
	// NamespacesPrefix holds one Namespace (with its quota) per namespace
	// made by `berth namespace create`; "default" needs none.
	NamespacesPrefix = Root + "namespaces/"
	// UsersPrefix holds one User per person with a certificate of their
	// own; RevokedPrefix one RevokedCertificate per certificate that every
	// handshake refuses.
	UsersPrefix   = Root + "pki/users/"
	RevokedPrefix = Root + "pki/revoked/"
	// AuditPrefix holds one AuditRecord per call that changed something,
	// keyed so that keys sort by time.
	AuditPrefix = Root + "audit/"
)

// NamespaceKey is where namespace name's record lives.
func NamespaceKey(name string) string { return NamespacesPrefix + name }

// UserKey is where user name's record lives.
func UserKey(name string) string { return UsersPrefix + name }

// RevokedKey is where the deny-list entry of a certificate serial lives.
func RevokedKey(serial string) string { return RevokedPrefix + serial }

// NodeKey is where node id is stored.
func NodeKey(id string) string { return NodesPrefix + id }

// ServiceKey is where a service is stored.
func ServiceKey(namespace, app, name string) string {
	return ServicesPrefix + namespace + "/" + app + "/" + name
}

// AppServicesPrefix holds every service of an app.
func AppServicesPrefix(namespace, app string) string {
	return ServicesPrefix + namespace + "/" + app + "/"
}

// TaskKey is where a task is stored.
func TaskKey(namespace, app, service, id string) string {
	return TasksPrefix + namespace + "/" + app + "/" + service + "/" + id
}

// ServiceTasksPrefix holds every task of a service.
func ServiceTasksPrefix(namespace, app, service string) string {
	return TasksPrefix + namespace + "/" + app + "/" + service + "/"
}

// NetworkKey is where network name of namespace is stored.
func NetworkKey(namespace, name string) string {
	return NetworksPrefix + namespace + "/" + name
}

// NamespaceNetworksPrefix holds every network of a namespace.
func NamespaceNetworksPrefix(namespace string) string {
	return NetworksPrefix + namespace + "/"
}

// NetworkSubnetKey is the claim on a network subnet (CIDR); its value is
// the network's key.
func NetworkSubnetKey(cidr string) string {
	return NetworkSubnetsPrefix + strings.ReplaceAll(cidr, "/", "_")
}

// VolumeKey is where volume name of namespace is stored.
func VolumeKey(namespace, name string) string { return VolumesPrefix + namespace + "/" + name }

// NamespaceVolumesPrefix holds every volume of a namespace.
func NamespaceVolumesPrefix(namespace string) string { return VolumesPrefix + namespace + "/" }

// SecretKey is where secret name of namespace is stored.
func SecretKey(namespace, name string) string { return SecretsPrefix + namespace + "/" + name }

// NamespaceSecretsPrefix holds every secret of a namespace.
func NamespaceSecretsPrefix(namespace string) string { return SecretsPrefix + namespace + "/" }

// ConfigKey is where config name of namespace is stored.
func ConfigKey(namespace, name string) string { return ConfigsPrefix + namespace + "/" + name }

// NamespaceConfigsPrefix holds every config of a namespace.
func NamespaceConfigsPrefix(namespace string) string { return ConfigsPrefix + namespace + "/" }

// RegistryKey is where the credential for registry (host[:port]) is stored.
func RegistryKey(registry string) string { return RegistriesPrefix + registry }

// TokenKey is where a join token record is stored.
func TokenKey(id string) string { return TokensPrefix + id }

// SubnetKey records which node holds a container subnet.
func SubnetKey(cidr string) string {
	return SubnetsPrefix + strings.ReplaceAll(cidr, "/", "_")
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier of 26 lower-case letters and digits,
// usable as a containerd container id and in etcd keys.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: reading random bytes: %v", err))
	}
	return idEncoding.EncodeToString(b[:])
}
