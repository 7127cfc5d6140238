package apiserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// causeApply is the change cause of a spec version made by Apply.
const causeApply = "apply"

// catchUp waits until the cache holds everything etcd holds now, after a
// guarded write lost a race, so the next attempt reads what won.
func (s *Server) catchUp(ctx context.Context) error {
	rev, err := s.cfg.Store.Revision(ctx)
	if err != nil {
		return err
	}
	return s.cfg.Cache.WaitRevision(ctx, rev)
}

// errUnchanged tells guardedUpdate that there is nothing to write.
var errUnchanged = errors.New("unchanged")

// guardedUpdate reads the object at key with read (from the cache), lets
// change alter a private copy, and writes it guarded by the revision it was
// read at. When another writer got in first it catches up and tries again,
// so the change lands on top of the other write instead of erasing it.
// change returns errUnchanged when there is nothing to write, or an error
// (a gRPC status) that ends the request. It returns the object as written,
// or as it is when unchanged.
func guardedUpdate[T store.Object](ctx context.Context, s *Server, key string, read func() (T, error), change func(T) error) (T, error) {
	return guardedUpdateTxn(ctx, s, key, read, func(next T, _ *store.Txn) error { return change(next) })
}

// guardedUpdateTxn is guardedUpdate whose change may also add guards to
// the write's transaction: those of what it read to decide (a quota).
func guardedUpdateTxn[T store.Object](ctx context.Context, s *Server, key string, read func() (T, error), change func(T, *store.Txn) error) (T, error) {
	var none T
	for attempt := 0; ; attempt++ {
		cur, err := read()
		if err != nil {
			return none, err
		}
		next := proto.Clone(cur).(T)
		var txn store.Txn
		if err := change(next, &txn); errors.Is(err, errUnchanged) {
			return cur, nil
		} else if err != nil {
			return none, err
		}
		if m := next.GetMeta(); m != nil {
			m.UpdatedAt = timestamppb.Now()
		}
		txn.Update(key, next)
		rev, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return none, err
		}
		if m := next.GetMeta(); m != nil {
			m.Version = rev
		}
		return next, storeError(s.cfg.Cache.WaitRevision(ctx, rev))
	}
}

// serviceRef checks that a request names an app and a service and returns
// the namespace and the service's key.
func serviceRef(namespace, app, service string) (ns, key string, err error) {
	if app == "" || service == "" {
		return "", "", status.Error(codes.InvalidArgument, "name the service as APP/SERVICE")
	}
	ns = namespaceOf(namespace)
	return ns, store.ServiceKey(ns, app, service), nil
}

// readService returns a reader of the cached service at key, for
// guardedUpdate.
func (s *Server) readService(ns, app, name string) func() (*berthv1.Service, error) {
	key := store.ServiceKey(ns, app, name)
	return func() (*berthv1.Service, error) {
		svc, ok := s.cfg.Cache.Service(key)
		if !ok {
			return nil, serviceNotFound(ns, app, name)
		}
		return svc, nil
	}
}

func serviceNotFound(ns, app, name string) error {
	return status.Errorf(codes.NotFound, "service %s/%s not found in namespace %q; `berth get services` lists the services", app, name, ns)
}

// serviceEvent is an event about one service, with the attributes that
// find it by app and service.
func serviceEvent(svc *berthv1.Service, action, message string) *berthv1.Event {
	return &berthv1.Event{
		Kind: store.EventKindService, ObjectId: svc.Namespace + "/" + svc.App + "/" + svc.Name, Action: action, Message: message,
		Attributes: map[string]string{store.AttrNamespace: svc.Namespace, store.AttrApp: svc.App, store.AttrService: svc.Name},
	}
}

// ScaleService sets a replicated service's replicas. Replicas are not part
// of a spec version: the orchestrator starts or stops tasks of the current
// version, and no revision is kept.
func (s *Server) ScaleService(ctx context.Context, req *berthv1.ScaleServiceRequest) (*berthv1.Service, error) {
	ns, key, err := serviceRef(req.Namespace, req.App, req.Service)
	if err != nil {
		return nil, err
	}
	var from uint64
	svc, err := guardedUpdateTxn(ctx, s, key, s.readService(ns, req.App, req.Service), func(svc *berthv1.Service, txn *store.Txn) error {
		if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			return status.Errorf(codes.FailedPrecondition, "service %s/%s is global: it runs one task on every eligible node and cannot be scaled; set deploy.mode: replicated and apply to choose a count", req.App, req.Service)
		}
		from = svc.GetSpec().GetReplicas()
		if from == req.Replicas {
			return errUnchanged
		}
		if r := validation.ReplicasReason(svc.GetSpec().GetMode(), req.Replicas, validation.MaxReplicas(s.cfg.Cache.Settings())); r != "" {
			return status.Errorf(codes.InvalidArgument, "scaling service %s/%s: %s", req.App, req.Service, r)
		}
		if req.Replicas > from {
			if err := s.checkServiceTrust(ctx, svc, svc.GetSpec()); err != nil {
				return err
			}
		}
		svc.Spec.Replicas = req.Replicas
		return s.serviceQuota(ctx, txn, "scale", svc)
	})
	if err != nil {
		return nil, err
	}
	if from != req.Replicas {
		s.log.Info("service scaled", "namespace", ns, "app", req.App, "service", req.Service, "from", from, "to", req.Replicas)
		s.cfg.Store.RecordEvent(serviceEvent(svc, "scale", fmt.Sprintf("scaled from %d to %d replicas", from, req.Replicas)))
	}
	return svc, nil
}

// RestartService replaces every task of a service: a new spec version
// that differs only by its restart generation, rolled out like any update
// (update_config's parallelism, order and monitor apply).
func (s *Server) RestartService(ctx context.Context, req *berthv1.RestartServiceRequest) (*berthv1.Service, error) {
	ns, key, err := serviceRef(req.Namespace, req.App, req.Service)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	svc, err := guardedUpdateTxn(ctx, s, key, s.readService(ns, req.App, req.Service), func(svc *berthv1.Service, txn *store.Txn) error {
		spec := proto.Clone(svc.GetSpec()).(*berthv1.ServiceSpec)
		spec.RestartGeneration++
		if err := s.checkServiceTrust(ctx, svc, spec); err != nil {
			return err
		}
		revision.Change(svc, spec, "restart", berthv1.UpdateState_UPDATE_STATE_UPDATING, "restart requested", now)
		return s.serviceQuota(ctx, txn, "restart", svc)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("service restarted", "namespace", ns, "app", req.App, "service", req.Service, "version", svc.GetSpecVersion())
	s.cfg.Store.RecordEvent(serviceEvent(svc, "restart", fmt.Sprintf("restart requested: version %d replaces every task", svc.GetSpecVersion())))
	return svc, nil
}

// RollbackService makes an earlier spec current again under a new spec
// version. The replicas (when the mode is the same), depends_on and the
// update and rollback configs stay as they are: they never make a spec
// version, so a revision does not own them.
func (s *Server) RollbackService(ctx context.Context, req *berthv1.RollbackServiceRequest) (*berthv1.Service, error) {
	ns, key, err := serviceRef(req.Namespace, req.App, req.Service)
	if err != nil {
		return nil, err
	}
	var target, from uint64
	svc, err := guardedUpdateTxn(ctx, s, key, s.readService(ns, req.App, req.Service), func(svc *berthv1.Service, txn *store.Txn) error {
		rev, err := revision.Find(svc, req.ToVersion)
		if err != nil {
			return revisionError(err)
		}
		target, from = rev.SpecVersion, svc.SpecVersion
		revision.Rollback(svc, rev, "", time.Now())
		if err := s.checkServiceTrust(ctx, svc, svc.GetSpec()); err != nil {
			return err
		}
		s.cfg.Cache.PinFiles(ns, svc.Spec)
		return s.serviceQuota(ctx, txn, "rollback", svc)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("service rolled back", "namespace", ns, "app", req.App, "service", req.Service, "to", target, "version", svc.SpecVersion)
	s.cfg.Store.RecordEvent(serviceEvent(svc, "rollback", fmt.Sprintf("rollback from version %d to the spec of version %d (now version %d)", from, target, svc.SpecVersion)))
	return svc, nil
}

// revisionError maps an error of revision.Find to its gRPC status: a
// version never kept is not found; asking to leave the only or the current
// version is a precondition the request cannot meet.
func revisionError(err error) error {
	switch {
	case errors.Is(err, revision.ErrNoSuchVersion):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, revision.ErrNoRevisions), errors.Is(err, revision.ErrCurrentVersion):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// Rebalance asks the orchestrator to move the tasks of the replicated
// services named (every one of the namespace, of an app, or one service)
// toward an even spread. Global services run one task per node and are
// left out.
func (s *Server) Rebalance(ctx context.Context, req *berthv1.RebalanceRequest) (*berthv1.RebalanceResponse, error) {
	ns := namespaceOf(req.Namespace)
	if req.Service != "" && req.App == "" {
		return nil, status.Errorf(codes.InvalidArgument, "rebalancing service %q: name its app too (APP/SERVICE)", req.Service)
	}
	var services []*berthv1.Service
	switch {
	case req.Service != "":
		svc, ok := s.cfg.Cache.Service(store.ServiceKey(ns, req.App, req.Service))
		if !ok {
			return nil, serviceNotFound(ns, req.App, req.Service)
		}
		if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			return nil, status.Errorf(codes.FailedPrecondition, "service %s/%s is global: it runs one task on every eligible node, so there is nothing to rebalance", req.App, req.Service)
		}
		services = []*berthv1.Service{svc}
	case req.App != "":
		services = s.cfg.Cache.Services(store.AppServicesPrefix(ns, req.App))
		if len(services) == 0 {
			return nil, status.Errorf(codes.NotFound, "app %q not found in namespace %q; `berth get apps` lists the apps", req.App, ns)
		}
	default:
		services = s.cfg.Cache.Services(store.ServicesPrefix + ns + "/")
	}
	now := timestamppb.Now()
	resp := &berthv1.RebalanceResponse{}
	var changes []store.Change
	for _, svc := range services {
		if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			continue
		}
		resp.Services = append(resp.Services, svc.App+"/"+svc.Name)
		changes = append(changes, store.Change{Key: store.ServiceKey(ns, svc.App, svc.Name), Current: svc, Apply: func(o store.Object) bool {
			next := o.(*berthv1.Service)
			next.Meta.UpdatedAt = now
			next.Rebalance = &berthv1.RebalanceStatus{State: berthv1.RebalanceState_REBALANCE_STATE_REQUESTED, RequestedAt: now}
			return true
		}})
	}
	rev, err := s.cfg.Store.Update(ctx, changes)
	if err != nil {
		return nil, storeError(err)
	}
	for _, svc := range services {
		if svc.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			s.cfg.Store.RecordEvent(serviceEvent(svc, "rebalance", "rebalance requested"))
		}
	}
	s.log.Info("rebalance requested", "namespace", ns, "app", req.App, "service", req.Service, "services", len(resp.Services))
	return resp, storeError(s.cfg.Cache.WaitRevision(ctx, rev))
}
