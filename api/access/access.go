// Package access decides who may call what: the one table from every gRPC
// method of Berth's API (cluster, agent and node services) to the role it
// needs and whether it acts in a namespace, and the principal a call is
// made by. The gRPC interceptor, the HTTP/JSON API, the dashboard and the
// audit log all read this table; nothing else decides access.
//
// Roles are ordered: a viewer reads what is in its namespaces (logs
// included), a deployer also changes it (apply, delete, scale, rollout,
// exec, build, secrets and configs), an admin does everything (nodes,
// cluster settings, registries, users, namespaces). Nodes and servers are
// roles of their own that only their own services admit.
package access

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/berthproject/berth/api/identity"
)

// Level is how much a user role may do; higher includes lower.
type Level int

// The user levels, lowest first.
const (
	// None is a role that is not a user role (node, server) or unknown.
	None Level = iota
	Viewer
	Deployer
	Admin
)

// LevelOf is the level of a role; None for node, server and unknown roles.
func LevelOf(r identity.Role) Level {
	switch r {
	case identity.RoleViewer:
		return Viewer
	case identity.RoleDeployer:
		return Deployer
	case identity.RoleAdmin:
		return Admin
	}
	return None
}

// Scope says what a method acts on.
type Scope int

const (
	// Cluster methods act on no namespace (nodes, images, settings).
	Cluster Scope = iota
	// Namespaced methods act in the namespace their request names (the
	// first message of a stream, for client streams); empty is "default".
	Namespaced
)

// Rule is what one method needs.
type Rule struct {
	// Roles admits these roles whatever their level: node for the agent
	// service, server for the node service and for calls servers make.
	Roles []identity.Role
	// Level admits user roles at or above it; None admits no user.
	Level Level
	Scope Scope
	// Mutates marks a call that changes something: it is audited.
	Mutates bool
	// Open needs no credential at all (Join: the join token is the
	// credential, checked by the method).
	Open bool
}

const (
	cluster = "/berth.v1.ClusterService/"
	agent   = "/berth.v1.AgentService/"
	node    = "/berth.v1.NodeService/"
)

func view(scope Scope) Rule   { return Rule{Level: Viewer, Scope: scope} }
func deploy(scope Scope) Rule { return Rule{Level: Deployer, Scope: scope, Mutates: true} }
func admin(mutates bool) Rule { return Rule{Level: Admin, Scope: Cluster, Mutates: mutates} }
func serverOnly() Rule        { return Rule{Roles: []identity.Role{identity.RoleServer}} }

// Methods is the table: every method of every Berth gRPC service has an
// entry (a test fails when one has none). A method missing from it is
// refused.
var Methods = map[string]Rule{
	// Apps, services and tasks.
	cluster + "Apply":           deploy(Namespaced),
	cluster + "DeleteApp":       deploy(Namespaced),
	cluster + "ListApps":        view(Namespaced),
	cluster + "GetService":      view(Namespaced),
	cluster + "ListServices":    view(Namespaced),
	cluster + "ListTasks":       view(Namespaced),
	cluster + "ScaleService":    deploy(Namespaced),
	cluster + "RestartService":  deploy(Namespaced),
	cluster + "RollbackService": deploy(Namespaced),
	cluster + "Rebalance":       deploy(Namespaced),
	cluster + "Logs":            view(Namespaced),
	cluster + "Exec":            deploy(Namespaced),
	cluster + "Top":             view(Namespaced),
	// Watching: nodes are shown to every viewer; services and tasks only
	// of the namespace asked for.
	cluster + "Watch":       view(Namespaced),
	cluster + "ListEvents":  view(Namespaced),
	cluster + "WatchEvents": view(Namespaced),
	// Networks, volumes, secrets and configs of a namespace.
	cluster + "CreateNetwork": deploy(Namespaced),
	cluster + "ListNetworks":  view(Namespaced),
	cluster + "GetNetwork":    view(Namespaced),
	cluster + "RemoveNetwork": deploy(Namespaced),
	cluster + "ListVolumes":   view(Namespaced),
	cluster + "GetVolume":     view(Namespaced),
	cluster + "RemoveVolume":  deploy(Namespaced),
	cluster + "CreateSecret":  deploy(Namespaced),
	cluster + "ListSecrets":   view(Namespaced),
	cluster + "GetSecret":     view(Namespaced),
	cluster + "RemoveSecret":  deploy(Namespaced),
	// Build triggers of a namespace: a deployer may already build, push
	// and roll out there. Their webhook (POST /hooks/NAME on the HTTP
	// API) is not a gRPC method and not in this table: it is authorised
	// by its HMAC signature alone (controlplane/trigger.Hooks).
	cluster + "CreateTrigger":    deploy(Namespaced),
	cluster + "ListTriggers":     view(Namespaced),
	cluster + "ListTriggerRuns":  view(Namespaced),
	cluster + "GetTriggerRunLog": view(Namespaced),
	cluster + "RemoveTrigger":    deploy(Namespaced),
	cluster + "CreateConfig":     deploy(Namespaced),
	cluster + "ListConfigs":      view(Namespaced),
	cluster + "GetConfig":        view(Namespaced),
	cluster + "RemoveConfig":     deploy(Namespaced),
	// Images are the cluster's: deployers build, import, pull and push
	// them; everyone sees them.
	cluster + "Build":       deploy(Cluster),
	cluster + "ImportImage": deploy(Cluster),
	cluster + "PullImage":   deploy(Cluster),
	cluster + "PushImage":   deploy(Cluster),
	cluster + "ListImages":  view(Cluster),
	// What every caller may read about the cluster.
	cluster + "ListNodes":   view(Cluster),
	cluster + "Version":     view(Cluster),
	cluster + "GetSettings": view(Cluster),
	cluster + "WhoAmI":      view(Cluster),
	// Namespaces: a viewer sees its own (the handler filters the list).
	cluster + "ListNamespaces":  view(Cluster),
	cluster + "GetNamespace":    view(Namespaced),
	cluster + "CreateNamespace": admin(true),
	cluster + "UpdateNamespace": admin(true),
	cluster + "RemoveNamespace": admin(true),
	// API tokens: a deployer may make tokens no more powerful than itself
	// and see and revoke the tokens it made (the handlers check both).
	cluster + "CreateAPIToken": deploy(Cluster),
	cluster + "ListAPITokens":  view(Cluster),
	cluster + "RevokeAPIToken": deploy(Cluster),
	// The cluster itself.
	cluster + "ListServers":    admin(false),
	cluster + "UpdateNode":     admin(true),
	cluster + "RemoveNode":     admin(true),
	cluster + "MarkNodesDown":  admin(true),
	cluster + "UpdateSettings": admin(true),
	cluster + "JoinToken":      admin(true),
	cluster + "RotateCA":       admin(true),
	cluster + "Login":          admin(true),
	cluster + "Logout":         admin(true),
	cluster + "ListRegistries": admin(false),
	cluster + "CreateUser":     admin(true),
	cluster + "ListUsers":      admin(false),
	cluster + "RemoveUser":     admin(true),
	cluster + "Audit":          admin(false),
	// Trusted images: keys and trust policies are a namespace's trust
	// roots, so only admins change them (a deployer who could would lift
	// the policy that guards its own deploys); deployers sign with the
	// namespace's keys and list a registry's tags (with the cluster's
	// registry credentials, as they pull and push); everyone reads keys
	// (public halves), policies and signature states.
	cluster + "GenerateKey":       {Level: Admin, Scope: Namespaced, Mutates: true},
	cluster + "ImportKey":         {Level: Admin, Scope: Namespaced, Mutates: true},
	cluster + "RemoveKey":         {Level: Admin, Scope: Namespaced, Mutates: true},
	cluster + "ListKeys":          view(Namespaced),
	cluster + "SignImage":         deploy(Namespaced),
	cluster + "SetTrustPolicy":    {Level: Admin, Scope: Namespaced, Mutates: true},
	cluster + "RemoveTrustPolicy": {Level: Admin, Scope: Namespaced, Mutates: true},
	cluster + "ListTrustPolicies": view(Namespaced),
	cluster + "ListImageTags":     {Level: Deployer, Scope: Cluster},
	cluster + "VerifyImages":      view(Namespaced),

	// Trusted images: vulnerability scanning. The database is the
	// cluster's and only an admin replaces it; a scan stores a result and
	// answers with the gate of the namespace asked for.
	cluster + "ImportVulnDB":    admin(true),
	cluster + "GetVulnDBStatus": view(Cluster),
	cluster + "Scan":            deploy(Namespaced),
	cluster + "GetScanResult":   view(Namespaced),
	cluster + "ListScanResults": view(Cluster),

	// Backup and restore: a snapshot is the whole cluster's state, so
	// only an admin takes one, and every one taken is audited although
	// it changes nothing.
	cluster + "SaveSnapshot": admin(true),
	// CLI conventions: removing images changes every namespace's nodes,
	// and disk usage counts every namespace's containers: admins only.
	cluster + "RemoveImage": admin(true),
	cluster + "PruneImages": admin(true),
	cluster + "DiskUsage":   admin(false),
	// Copying files (berth cp): deployer both ways, since a container's
	// files can hold its secrets; both are audited.
	cluster + "CopyFromTask": deploy(Namespaced),
	cluster + "CopyToTask":   deploy(Namespaced),

	// Agents: Join is open (its token is the credential); a session needs
	// the node's certificate.
	agent + "Join":    {Open: true, Mutates: true},
	agent + "Session": {Roles: []identity.Role{identity.RoleNode}},

	// A node's own endpoint answers servers only.
	node + "Logs":         serverOnly(),
	node + "ImportImage":  serverOnly(),
	node + "ListImages":   serverOnly(),
	node + "Build":        serverOnly(),
	node + "PullImage":    serverOnly(),
	node + "PushImage":    serverOnly(),
	node + "Exec":         serverOnly(),
	node + "Stats":        serverOnly(),
	node + "VolumeUsage":  serverOnly(),
	node + "RemoveVolume": serverOnly(),
	node + "Sbom":         serverOnly(),
	// CLI conventions: image removal and disk usage.
	node + "RemoveImages": serverOnly(),
	node + "PruneImages":  serverOnly(),
	node + "DiskUsage":    serverOnly(),
	node + "CopyFrom":     serverOnly(),
	node + "CopyTo":       serverOnly(),
}

// ShortName is a full gRPC method name without its service
// ("/berth.v1.ClusterService/Apply" is "Apply").
func ShortName(method string) string {
	return method[strings.LastIndex(method, "/")+1:]
}

// Principal is who makes a call: the holder of a verified certificate or
// of an API token.
type Principal struct {
	// Kind is "user" (a client certificate), "token" (an API token),
	// "node" or "server".
	Kind string
	// Name is the certificate's common name or the token's name.
	Name string
	Role identity.Role
	// Namespaces the principal may act in; empty means every namespace.
	Namespaces []string
	// TokenID is the API token's id, for tokens.
	TokenID string
	// Serial is the certificate's serial number (hex), for certificates.
	Serial string
}

// String names the principal as audit records do: "user/alice",
// "token/ci", "node/<id>".
func (p Principal) String() string { return p.Kind + "/" + p.Name }

// AllNamespaces reports whether the principal may act in every namespace.
func (p Principal) AllNamespaces() bool { return len(p.Namespaces) == 0 }

// InNamespace reports whether the principal may act in namespace ns.
func (p Principal) InNamespace(ns string) bool {
	return p.AllNamespaces() || slices.Contains(p.Namespaces, ns)
}

// Covers reports whether p has at least the power of q: a level at least
// q's, in at least q's namespaces. A token or user p makes must be
// covered by p.
func (p Principal) Covers(q Principal) bool {
	if LevelOf(p.Role) < LevelOf(q.Role) {
		return false
	}
	if p.AllNamespaces() {
		return true
	}
	if q.AllNamespaces() {
		return false
	}
	for _, ns := range q.Namespaces {
		if !p.InNamespace(ns) {
			return false
		}
	}
	return true
}

// Check decides whether p may call method in namespace ns (ignored for
// cluster-scoped methods). The error says who, what and why, for the
// caller to read; it is nil when the call is allowed.
func Check(p Principal, method, ns string) error {
	rule, ok := Methods[method]
	if !ok {
		return fmt.Errorf("%s is not a method Berth serves", method)
	}
	if rule.Open {
		return nil
	}
	if !slices.Contains(rule.Roles, p.Role) && (rule.Level == None || LevelOf(p.Role) < rule.Level) {
		if rule.Level == None {
			return fmt.Errorf("%s (%s) may not call %s: it is for %s only", p, p.Role, ShortName(method), joinRoles(rule.Roles))
		}
		return fmt.Errorf("%s is a %s and may not call %s, which needs the %s role", p, p.Role, ShortName(method), levelName(rule.Level))
	}
	if rule.Scope == Namespaced && LevelOf(p.Role) != None && !p.InNamespace(ns) {
		return fmt.Errorf("%s may not act in namespace %q; it may act in %s", p, ns, strings.Join(p.Namespaces, ", "))
	}
	return nil
}

func levelName(l Level) string {
	switch l {
	case Viewer:
		return "viewer"
	case Deployer:
		return "deployer"
	case Admin:
		return "admin"
	}
	return "no user"
}

func joinRoles(rs []identity.Role) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = string(r)
	}
	return strings.Join(names, " and ")
}

type principalKey struct{}

// NewContext returns ctx carrying p, the caller of the method it serves.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller that the authorisation interceptor put in
// ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// NamespacedRequest is a request that names the namespace it acts in.
type NamespacedRequest interface {
	GetNamespace() string
}

// AllNamespacesRequest is a listing request that can ask for every
// namespace.
type AllNamespacesRequest interface {
	GetAllNamespaces() bool
}
