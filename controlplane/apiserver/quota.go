package apiserver

import (
	"context"
	"errors"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/quota"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// namespaceRecord reads the record of namespace ns from etcd (the cache
// does not hold namespaces): nil without an error when it has none.
func (s *Server) namespaceRecord(ctx context.Context, ns string) (*berthv1.Namespace, error) {
	rec := &berthv1.Namespace{}
	err := s.cfg.Store.Get(ctx, store.NamespaceKey(ns), rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// hasLimits reports whether q bounds anything.
func hasLimits(q *berthv1.NamespaceQuota) bool {
	return q.GetCpuMillis() > 0 || q.GetMemoryBytes() > 0 || q.GetTasks() > 0 || q.GetVolumes() > 0
}

// quotaRequest is what a request would make of some services of one app.
type quotaRequest struct {
	// verb names the request in messages: "apply", "scale", "rollback".
	verb, ns, app string
	// wholeApp says the request replaces every service of app (Apply);
	// otherwise only those named in specs change.
	wholeApp bool
	// specs are the services' specs after the request, by name.
	specs map[string]*berthv1.ServiceSpec
	// writes says the request's transaction writes something; an apply
	// that changes nothing must not write the namespace's record.
	writes bool
}

// namespaceUse is the use of namespace ns now, by the cache, with its
// services as a quota counts them and the names of its volume records.
func (s *Server) namespaceUse(ns string, nodes []*berthv1.Node) (services []quota.Service, stored []*berthv1.Service, volumes []string) {
	stored = s.cfg.Cache.Services(store.ServicesPrefix + ns + "/")
	for _, svc := range stored {
		services = append(services, quota.Desired(svc.App+"/"+svc.Name, svc.GetSpec(), nodes))
	}
	for _, v := range s.cfg.Cache.Volumes(store.NamespaceVolumesPrefix(ns)) {
		volumes = append(volumes, v.GetName())
	}
	return services, stored, volumes
}

// checkQuota refuses r (ResourceExhausted, with the quota, the use and the
// need) when it would take its namespace over quota, and makes txn depend
// on the namespace's record: a quota set or changed in between fails the
// write. Under a quota the write also rewrites the record unchanged, which
// moves its version: of two requests checked against the same use, the
// second to commit fails, plans again and is checked against the first's
// use. (Guarding the namespace's services instead would also fail on
// every status the orchestrator writes to them during a rollout.)
func (s *Server) checkQuota(ctx context.Context, txn *store.Txn, r quotaRequest) error {
	rec, err := s.namespaceRecord(ctx, r.ns)
	if err != nil {
		return storeError(err)
	}
	key := store.NamespaceKey(r.ns)
	if !hasLimits(rec.GetQuota()) {
		txn.Guard(key, rec.GetMeta().GetVersion())
		return nil
	}
	if r.writes {
		txn.Update(key, rec)
	} else {
		txn.Guard(key, rec.GetMeta().GetVersion())
	}
	// The record came from etcd, the services come from the cache: the
	// cache must hold the services written with the record's last
	// version, or a request could pass on a use that is out of date.
	if err := s.cfg.Cache.WaitRevision(ctx, rec.GetMeta().GetVersion()); err != nil {
		return storeError(err)
	}
	nodes := s.cfg.Cache.Nodes()
	before, stored, volumes := s.namespaceUse(r.ns, nodes)
	var after, changed []quota.Service
	for i, svc := range stored {
		if svc.App == r.app {
			if _, ok := r.specs[svc.Name]; ok || r.wholeApp {
				continue
			}
		}
		after = append(after, before[i])
	}
	for name, spec := range r.specs {
		d := quota.Desired(r.app+"/"+name, spec, nodes)
		after = append(after, d)
		changed = append(changed, d)
	}
	err = quota.Check(quota.Change{
		Namespace: r.ns, Verb: r.verb, Quota: rec.GetQuota(),
		Before: quota.Of(before, volumes), After: quota.Of(after, volumes), Services: changed,
	})
	if err != nil {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return nil
}

// applyQuota checks an Apply against its namespace's quota (see
// checkQuota).
func (s *Server) applyQuota(ctx context.Context, txn *store.Txn, req *berthv1.ApplyRequest) error {
	specs := make(map[string]*berthv1.ServiceSpec, len(req.Services))
	for _, svc := range req.Services {
		specs[svc.Name] = svc.Spec
	}
	return s.checkQuota(ctx, txn, quotaRequest{verb: "apply", ns: req.Namespace, app: req.App, wholeApp: true, specs: specs, writes: txn.Len() > 0})
}

// serviceQuota checks that svc, as a request would leave it, keeps its
// namespace within quota (see checkQuota).
func (s *Server) serviceQuota(ctx context.Context, txn *store.Txn, verb string, svc *berthv1.Service) error {
	return s.checkQuota(ctx, txn, quotaRequest{verb: verb, ns: svc.Namespace, app: svc.App,
		specs: map[string]*berthv1.ServiceSpec{svc.Name: svc.GetSpec()}, writes: true})
}
