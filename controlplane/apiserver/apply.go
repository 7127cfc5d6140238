package apiserver

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// applyAttempts bounds the retries of an Apply that raced another writer.
const applyAttempts = 5

// Apply makes an app's services and networks exactly the requested ones,
// in one transaction, after validating everything.
func (s *Server) Apply(ctx context.Context, req *berthv1.ApplyRequest) (*berthv1.ApplyResponse, error) {
	req.Namespace = namespaceOf(req.Namespace)
	for _, svc := range req.Services {
		validation.Normalize(svc.GetSpec())
	}
	joinDefaultNetwork(req)
	errs := validation.ValidateApply(req)
	errs = append(errs, validation.ValidateReplicas(req, validation.MaxReplicas(s.cfg.Cache.Settings()))...)
	if len(errs) > 0 {
		return nil, errs.GRPCStatus().Err()
	}
	// Tags become digests before planning, so the plan compares pinned
	// specs; see pinDigests for why a re-apply stays unchanged.
	if warnings := s.pinDigests(ctx, req); len(warnings) > 0 {
		s.log.Warn("apply: images not pinned", "namespace", req.Namespace, "app", req.App, "warnings", warningsSummary(warnings))
		warn(ctx, warnings...)
	}
	// Trust after pinning: a policy checks the digest the tasks will run.
	if errs := s.checkTrust(ctx, req.Namespace, req.Services); len(errs) > 0 {
		return nil, errs.GRPCStatus().Err()
	}
	// The scan gate reads the pinned digests: what is scanned is what
	// runs.
	if errs, err := s.checkScanGate(ctx, req); err != nil || len(errs) > 0 {
		if err != nil {
			return nil, err
		}
		return nil, errs.GRPCStatus().Err()
	}
	for attempt := 0; ; attempt++ {
		resp, txn, err := s.plan(req, time.Now())
		if err != nil {
			return nil, err
		}
		if err := s.applyQuota(ctx, txn, req); err != nil {
			return nil, err
		}
		if req.DryRun || txn.Len() == 0 {
			return resp, nil
		}
		rev, retry, err := s.commit(ctx, txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.log.Info("app applied", "namespace", req.Namespace, "app", req.App, "changes", txn.Len())
		s.cfg.Store.RecordEvent(appEvent(req.Namespace, req.App, "apply", summarize(resp)))
		return resp, storeError(s.cfg.Cache.WaitRevision(ctx, rev))
	}
}

// commit writes txn. When another writer got in first and attempts are
// left, it catches the cache up and says to retry: the caller plans again
// from what is stored now. Errors come as gRPC statuses.
func (s *Server) commit(ctx context.Context, txn *store.Txn, attempt int) (rev int64, retry bool, err error) {
	rev, err = s.cfg.Store.Commit(ctx, txn)
	if errors.Is(err, store.ErrConflict) && attempt < applyAttempts {
		if err := s.catchUp(ctx); err != nil {
			return 0, false, storeError(err)
		}
		return 0, true, nil
	}
	if err != nil {
		return 0, false, storeError(err)
	}
	return rev, false, nil
}

// plan compares the request with the stored services and networks and
// returns the changes with the transaction that makes them, or the
// problems (an InvalidArgument status) that only the cluster's state
// shows: a network that is missing or would change, a subnet or fixed
// address that is taken, an ingress port another service publishes.
func (s *Server) plan(req *berthv1.ApplyRequest, now time.Time) (*berthv1.ApplyResponse, *store.Txn, error) {
	ns, app := req.Namespace, req.App
	existing := map[string]*berthv1.Service{}
	for _, svc := range s.cfg.Cache.Services(store.AppServicesPrefix(ns, app)) {
		existing[svc.Name] = svc
	}
	ts := timestamppb.New(now)
	resp := &berthv1.ApplyResponse{}
	txn := &store.Txn{}
	// Networks first: a service's tasks need their networks, and the
	// watchers see the writes of one transaction in order.
	nets, errs := s.planNetworks(req, ts, txn, resp)
	// Secrets and configs before the services are compared: their
	// references take the versions stored.
	errs = append(errs, s.planFiles(req, now, txn)...)
	errs = append(errs, s.checkAddresses(req, nets)...)
	errs = append(errs, s.checkIngressPorts(req)...)
	errs = append(errs, s.checkSecurity(req)...)
	errs = append(errs, s.checkVolumeOwners(req)...)
	if len(errs) > 0 {
		return nil, nil, errs.GRPCStatus().Err()
	}
	for _, want := range req.Services {
		key := store.ServiceKey(ns, app, want.Name)
		cur, ok := existing[want.Name]
		delete(existing, want.Name)
		if !ok {
			txn.Create(key, &berthv1.Service{
				Meta:          &berthv1.Meta{Id: store.NewID(), CreatedAt: ts, UpdatedAt: ts},
				Namespace:     ns,
				App:           app,
				Name:          want.Name,
				Spec:          want.Spec,
				SpecVersion:   1,
				ChangeCause:   causeApply,
				SpecUpdatedAt: ts,
			})
			resp.Changes = append(resp.Changes, &berthv1.ServiceChange{Service: want.Name, Action: berthv1.ChangeAction_CHANGE_ACTION_CREATE})
			continue
		}
		revision.KeepRestarts(want.Spec, cur.Spec)
		fields := revision.ChangedFields(cur.Spec, want.Spec)
		if len(fields) == 0 {
			resp.Changes = append(resp.Changes, &berthv1.ServiceChange{Service: want.Name, Action: berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED})
			continue
		}
		next := proto.Clone(cur).(*berthv1.Service)
		next.Meta.UpdatedAt = ts
		if revision.NeedsNewVersion(fields) {
			revision.Change(next, want.Spec, causeApply, berthv1.UpdateState_UPDATE_STATE_UPDATING, "", now)
		} else {
			next.Spec = want.Spec
		}
		txn.Update(key, next)
		resp.Changes = append(resp.Changes, &berthv1.ServiceChange{Service: want.Name, Action: berthv1.ChangeAction_CHANGE_ACTION_UPDATE, Fields: fields})
	}
	// By name, so the plan a user reads (and --diff shows) is the same
	// each time.
	for _, name := range slices.Sorted(maps.Keys(existing)) {
		txn.Delete(store.ServiceKey(ns, app, name), existing[name].GetMeta().GetVersion())
		resp.Changes = append(resp.Changes, &berthv1.ServiceChange{Service: name, Action: berthv1.ChangeAction_CHANGE_ACTION_REMOVE})
	}
	return resp, txn, nil
}

// summarize says what an apply changed, for the event history.
func summarize(resp *berthv1.ApplyResponse) string {
	var parts []string
	for _, n := range resp.GetCreatedNetworks() {
		parts = append(parts, "network "+n+" create")
	}
	for _, c := range resp.GetChanges() {
		if c.Action != berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED {
			word := strings.ToLower(strings.TrimPrefix(c.Action.String(), "CHANGE_ACTION_"))
			parts = append(parts, c.Service+" "+word)
		}
	}
	for _, n := range resp.GetRemovedNetworks() {
		parts = append(parts, "network "+n+" remove")
	}
	return strings.Join(parts, ", ")
}
