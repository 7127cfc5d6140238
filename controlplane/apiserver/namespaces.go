package apiserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/quota"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// eventKindNamespace is the kind of events about namespaces.
const eventKindNamespace = "namespace"

// A namespace is a tenant. It needs no record to be used: applying to a
// new namespace works as it always has, without a quota. A record (made by
// CreateNamespace, or by UpdateNamespace for a namespace in use) holds its
// quota and labels.

// checkQuotaValues refuses negative quotas.
func checkQuotaValues(q *berthv1.NamespaceQuota) error {
	if q.GetCpuMillis() < 0 || q.GetMemoryBytes() < 0 || q.GetTasks() < 0 || q.GetVolumes() < 0 {
		return status.Error(codes.InvalidArgument, "a quota cannot be negative; 0 means no bound")
	}
	return nil
}

// CreateNamespace records a namespace with its quota. A namespace already
// recorded is refused; one used without a record gets one.
func (s *Server) CreateNamespace(ctx context.Context, req *berthv1.CreateNamespaceRequest) (*berthv1.Namespace, error) {
	if err := validation.ValidateNamespaceName(req.Name); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := checkQuotaValues(req.Quota); err != nil {
		return nil, err
	}
	now := timestamppb.Now()
	ns := &berthv1.Namespace{
		Meta: &berthv1.Meta{Id: store.NewID(), CreatedAt: now, UpdatedAt: now},
		Name: req.Name, Quota: req.Quota, CreatedAt: now, Labels: req.Labels,
	}
	var txn store.Txn
	txn.Create(store.NamespaceKey(req.Name), ns)
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if errors.Is(err, store.ErrConflict) {
		return nil, status.Errorf(codes.AlreadyExists, "namespace %s exists already; `berth namespace update %s` changes its quota", req.Name, req.Name)
	}
	if err != nil {
		return nil, storeError(err)
	}
	ns.Meta.Version = rev
	s.log.Info("namespace created", "namespace", req.Name, "quota", quotaWords(req.Quota))
	s.cfg.Store.RecordEvent(namespaceEvent(req.Name, "create", "namespace created; quota: "+quotaWords(req.Quota)))
	return ns, nil
}

// UpdateNamespace replaces a namespace's quota. A quota below what the
// namespace uses is allowed: what runs keeps running, and requests that
// would need more are refused until the use is under it again.
func (s *Server) UpdateNamespace(ctx context.Context, req *berthv1.UpdateNamespaceRequest) (*berthv1.Namespace, error) {
	if err := checkQuotaValues(req.Quota); err != nil {
		return nil, err
	}
	var block *string
	if req.BlockSeverity != nil {
		b, err := normalizeBlockSeverity(req.GetBlockSeverity(), "none")
		if err != nil {
			return nil, err
		}
		block = &b
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.namespaceRecord(ctx, req.Name)
		if err != nil {
			return nil, storeError(err)
		}
		var txn store.Txn
		now := timestamppb.Now()
		var next *berthv1.Namespace
		if cur == nil {
			// A namespace in use (or "default") without a record gets one.
			if req.Name != DefaultNamespace && !s.namespaceInUse(req.Name) {
				return nil, namespaceNotFound(req.Name)
			}
			next = &berthv1.Namespace{Meta: &berthv1.Meta{Id: store.NewID(), CreatedAt: now, UpdatedAt: now}, Name: req.Name, Quota: req.Quota, CreatedAt: now}
			if block != nil {
				next.BlockSeverity = *block
			}
			txn.Create(store.NamespaceKey(req.Name), next)
		} else {
			if proto.Equal(cur.GetQuota(), req.GetQuota()) && (block == nil || *block == cur.BlockSeverity) {
				return cur, nil
			}
			next = proto.Clone(cur).(*berthv1.Namespace)
			next.Quota, next.Meta.UpdatedAt = req.Quota, now
			if block != nil {
				next.BlockSeverity = *block
			}
			txn.Update(store.NamespaceKey(req.Name), next)
		}
		rev, err := s.cfg.Store.Commit(ctx, &txn)
		if errors.Is(err, store.ErrConflict) && attempt < applyAttempts {
			continue
		}
		if err != nil {
			return nil, storeError(err)
		}
		next.Meta.Version = rev
		s.log.Info("namespace quota changed", "namespace", req.Name, "quota", quotaWords(req.Quota))
		msg := "quota changed: " + quotaWords(req.Quota)
		if block != nil {
			msg += "; scan gate: " + cmp.Or(*block, "the cluster's")
		}
		s.cfg.Store.RecordEvent(namespaceEvent(req.Name, "update", msg))
		return next, nil
	}
}

// ListNamespaces lists the recorded namespaces and those in use without a
// record ("default" always), each with its use; a caller limited to some
// namespaces sees only those.
func (s *Server) ListNamespaces(ctx context.Context, _ *berthv1.ListNamespacesRequest) (*berthv1.ListNamespacesResponse, error) {
	records, _, err := store.List(ctx, s.cfg.Store, store.NamespacesPrefix, func() *berthv1.Namespace { return &berthv1.Namespace{} })
	if err != nil {
		return nil, storeError(err)
	}
	byName := map[string]*berthv1.Namespace{DefaultNamespace: {Name: DefaultNamespace}}
	for name := range s.usedNamespaces() {
		byName[name] = &berthv1.Namespace{Name: name}
	}
	for _, r := range records {
		byName[r.Name] = r
	}
	caller, limited := access.FromContext(ctx)
	nodes := s.cfg.Cache.Nodes()
	resp := &berthv1.ListNamespacesResponse{}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		if limited && !caller.InNamespace(name) {
			continue
		}
		resp.Namespaces = append(resp.Namespaces, &berthv1.NamespaceSummary{Namespace: byName[name], Usage: s.namespaceUsage(name, nodes)})
	}
	return resp, nil
}

// GetNamespace returns one namespace with its use.
func (s *Server) GetNamespace(ctx context.Context, req *berthv1.GetNamespaceRequest) (*berthv1.NamespaceSummary, error) {
	name := namespaceOf(req.Namespace)
	rec, err := s.namespaceRecord(ctx, name)
	if err != nil {
		return nil, storeError(err)
	}
	if rec == nil {
		if name != DefaultNamespace && !s.namespaceInUse(name) {
			return nil, namespaceNotFound(name)
		}
		rec = &berthv1.Namespace{Name: name}
	}
	return &berthv1.NamespaceSummary{Namespace: rec, Usage: s.namespaceUsage(name, s.cfg.Cache.Nodes())}, nil
}

// RemoveNamespace forgets a namespace's record. It is refused while the
// namespace holds apps, networks, volumes, secrets or configs, and for
// "default", which always exists.
func (s *Server) RemoveNamespace(ctx context.Context, req *berthv1.RemoveNamespaceRequest) (*berthv1.RemoveNamespaceResponse, error) {
	if req.Name == DefaultNamespace {
		return nil, status.Error(codes.FailedPrecondition, "namespace default cannot be removed: it is where requests that name no namespace go")
	}
	for attempt := 0; ; attempt++ {
		rev := s.cfg.Cache.Revision()
		if held := s.namespaceContents(req.Name); len(held) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "namespace %s still holds %s; delete them first (berth delete APP -n %s, berth network|volume|secret|config rm)", req.Name, strings.Join(held, "; "), req.Name)
		}
		cur, err := s.namespaceRecord(ctx, req.Name)
		if err != nil {
			return nil, storeError(err)
		}
		if cur == nil {
			return nil, namespaceNotFound(req.Name)
		}
		var txn store.Txn
		txn.Delete(store.NamespaceKey(req.Name), cur.GetMeta().GetVersion())
		// Nothing may land in the namespace while it is checked empty.
		for _, p := range namespacePrefixes(req.Name) {
			txn.GuardPrefix(p, rev)
		}
		_, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.log.Info("namespace removed", "namespace", req.Name)
		s.cfg.Store.RecordEvent(namespaceEvent(req.Name, "remove", "namespace removed"))
		return &berthv1.RemoveNamespaceResponse{}, nil
	}
}

// namespacePrefixes are where the objects of namespace ns are stored.
func namespacePrefixes(ns string) []string {
	return []string{store.ServicesPrefix + ns + "/", store.NamespaceNetworksPrefix(ns), store.NamespaceVolumesPrefix(ns),
		store.NamespaceSecretsPrefix(ns), store.NamespaceConfigsPrefix(ns)}
}

// namespaceContents names what namespace ns holds, by kind: "apps web,
// shop; volumes data.1".
func (s *Server) namespaceContents(ns string) []string {
	var out []string
	list := func(kind string, names []string) {
		if len(names) > 0 {
			slices.Sort(names)
			out = append(out, kind+" "+strings.Join(slices.Compact(names), ", "))
		}
	}
	var apps, networks, volumes, secrets, configs []string
	for _, svc := range s.cfg.Cache.Services(store.ServicesPrefix + ns + "/") {
		apps = append(apps, svc.App)
	}
	for _, n := range s.cfg.Cache.Networks(store.NamespaceNetworksPrefix(ns)) {
		networks = append(networks, n.GetName())
	}
	for _, v := range s.cfg.Cache.Volumes(store.NamespaceVolumesPrefix(ns)) {
		volumes = append(volumes, v.GetName())
	}
	for _, sec := range s.cfg.Cache.Secrets(store.NamespaceSecretsPrefix(ns)) {
		secrets = append(secrets, sec.GetName())
	}
	for _, c := range s.cfg.Cache.Configs(store.NamespaceConfigsPrefix(ns)) {
		configs = append(configs, c.GetName())
	}
	list("apps", apps)
	list("networks", networks)
	list("volumes", volumes)
	list("secrets", secrets)
	list("configs", configs)
	return out
}

// namespaceInUse reports whether namespace ns holds anything.
func (s *Server) namespaceInUse(ns string) bool { return len(s.namespaceContents(ns)) > 0 }

// usedNamespaces are the namespaces that hold anything, recorded or not.
func (s *Server) usedNamespaces() map[string]bool {
	out := map[string]bool{}
	for _, svc := range s.cfg.Cache.Services(store.ServicesPrefix) {
		out[svc.Namespace] = true
	}
	for _, n := range s.cfg.Cache.Networks(store.NetworksPrefix) {
		out[n.GetNamespace()] = true
	}
	for _, v := range s.cfg.Cache.Volumes(store.VolumesPrefix) {
		out[v.GetNamespace()] = true
	}
	for _, sec := range s.cfg.Cache.Secrets(store.SecretsPrefix) {
		out[sec.GetNamespace()] = true
	}
	for _, c := range s.cfg.Cache.Configs(store.ConfigsPrefix) {
		out[c.GetNamespace()] = true
	}
	delete(out, "")
	return out
}

// namespaceUsage is what namespace ns holds against a quota, with its
// apps and services.
func (s *Server) namespaceUsage(ns string, nodes []*berthv1.Node) *berthv1.NamespaceUsage {
	services, stored, volumes := s.namespaceUse(ns, nodes)
	u := quota.Of(services, volumes).Proto()
	apps := map[string]bool{}
	for _, svc := range stored {
		apps[svc.App] = true
	}
	u.Apps, u.Services = int64(len(apps)), int64(len(stored))
	return u
}

func namespaceNotFound(name string) error {
	return status.Errorf(codes.NotFound, "namespace %q not found; `berth namespace ls` lists the namespaces", name)
}

// quotaWords says what a quota bounds: "tasks 50, cpu 2 CPUs, memory 4
// GiB", or "none".
func quotaWords(q *berthv1.NamespaceQuota) string {
	var parts []string
	if n := q.GetTasks(); n > 0 {
		parts = append(parts, fmt.Sprintf("tasks %d", n))
	}
	if n := q.GetCpuMillis(); n > 0 {
		parts = append(parts, "cpu "+quota.FormatCPU(n))
	}
	if n := q.GetMemoryBytes(); n > 0 {
		parts = append(parts, "memory "+quota.FormatBytes(n))
	}
	if n := q.GetVolumes(); n > 0 {
		parts = append(parts, fmt.Sprintf("volumes %d", n))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func namespaceEvent(name, action, message string) *berthv1.Event {
	return &berthv1.Event{Kind: eventKindNamespace, ObjectId: name, Action: action, Message: message,
		Attributes: map[string]string{store.AttrNamespace: name}}
}
