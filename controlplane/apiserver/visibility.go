package apiserver

import (
	"context"
	"slices"
	"strings"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
)

// scope is the namespaces a listing answers for: the one the request
// names (the authorisation interceptor checked the caller may act there),
// or, with all_namespaces, every namespace the caller may see.
type scope struct {
	all    bool
	one    string
	caller access.Principal
}

// listScope is the scope of a listing request naming ns, with all set when
// it asks for every namespace.
func listScope(ctx context.Context, ns string, all bool) scope {
	return scope{all: all, one: namespaceOf(ns), caller: caller(ctx)}
}

// has reports whether namespace ns is in the scope.
func (sc scope) has(ns string) bool {
	if sc.all {
		return sc.caller.InNamespace(ns)
	}
	return ns == sc.one
}

// prefix narrows a store prefix of namespaced keys (which continue with
// "<namespace>/") to the one namespace when the scope holds only one.
func (sc scope) prefix(base string) string {
	if sc.all {
		return base
	}
	return base + sc.one + "/"
}

// namespaces lists the namespaces of the scope, or nil for every
// namespace (an all-seeing caller with all_namespaces).
func (sc scope) namespaces() []string {
	switch {
	case !sc.all:
		return []string{sc.one}
	case sc.caller.AllNamespaces():
		return nil
	}
	return slices.Clone(sc.caller.Namespaces)
}

// hasEvent reports whether ev is in the scope: events of a namespace
// when it is, and events of no namespace (nodes, the cluster) always.
func (sc scope) hasEvent(ev *berthv1.Event) bool {
	ns := ev.GetAttributes()[store.AttrNamespace]
	if k := ev.GetKind(); ns == "" && (k == store.EventKindApp || k == store.EventKindService) {
		ns, _, _ = strings.Cut(ev.GetObjectId(), "/")
	}
	return ns == "" || sc.has(ns)
}
