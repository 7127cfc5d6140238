package apiserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/gitcontext"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/trigger"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// errNoTriggers is what a server built without trigger records answers.
var errNoTriggers = status.Error(codes.Unimplemented, "this server keeps no build triggers")

// CreateTrigger stores a build trigger after checking every field: the
// git URL, the branch, the path, the image repository and that the
// service exists. Its webhook secret is made here, sealed at rest, and
// answered this once.
func (s *Server) CreateTrigger(ctx context.Context, req *berthv1.CreateTriggerRequest) (*berthv1.CreateTriggerResponse, error) {
	if s.cfg.Triggers == nil {
		return nil, errNoTriggers
	}
	ns := namespaceOf(req.Namespace)
	trig, errs := s.checkTrigger(ns, req)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if s.cfg.KEK == nil {
		return nil, storeError(errNoKEK)
	}
	secret, err := trigger.NewSecret()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if trig.SealedSecret, err = trigger.SealSecret(s.cfg.KEK, ns, trig.Name, []byte(secret)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	var txn store.Txn
	txn.Create(trigger.Key(ns, trig.Name), trig)
	// The service must still be there when the trigger is written.
	svc, _ := s.cfg.Cache.Service(store.ServiceKey(ns, trig.App, trig.Service))
	txn.Guard(store.ServiceKey(ns, trig.App, trig.Service), svc.GetMeta().GetVersion())
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if errors.Is(err, store.ErrConflict) {
		if _, ok := s.cfg.Triggers.Trigger(ns, trig.Name); ok {
			return nil, status.Errorf(codes.AlreadyExists, "trigger %q exists in namespace %q; remove it first (`berth trigger rm %s`) or choose another name", trig.Name, ns, trig.Name)
		}
	}
	if err != nil {
		return nil, storeError(err)
	}
	if err := s.cfg.Triggers.Triggers.WaitRevision(ctx, rev); err != nil {
		return nil, storeError(err)
	}
	trig.Meta.Version = rev
	s.log.Info("trigger created", "namespace", ns, "trigger", trig.Name, "git", trig.Git, "branch", trig.Branch, "service", trig.App+"/"+trig.Service)
	return &berthv1.CreateTriggerResponse{Trigger: redactTrigger(trig), Secret: secret, HookPath: trigger.HookPath(ns, trig.Name)}, nil
}

// checkTrigger checks a create request and returns the trigger it makes,
// or every problem, each naming its field.
func (s *Server) checkTrigger(ns string, req *berthv1.CreateTriggerRequest) (*berthv1.Trigger, validation.Errors) {
	var errs validation.Errors
	fail := func(field, format string, args ...any) {
		errs = append(errs, validation.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if err := validation.ValidateName("trigger", req.Name); err != nil {
		fail("name", "%v", err)
	}
	switch {
	case req.Git == "":
		fail("git", "no repository: give its URL with --git, like https://git.example.com/team/web.git")
	case strings.Contains(req.Git, "#"):
		fail("git", "%q names a ref: give the repository's URL alone, the branch with --branch and the directory with --path", req.Git)
	default:
		if err := gitcontext.Check(req.Git); err != nil {
			fail("git", "%v", err)
		}
	}
	switch {
	case req.Branch == "":
		fail("branch", "no branch: name the branch whose pushes are built with --branch, like main")
	case strings.HasPrefix(req.Branch, "refs/"), strings.ContainsAny(req.Branch, " ~^:?*[\\"), strings.HasPrefix(req.Branch, "-"):
		fail("branch", "%q is not a branch name: give it as git shows it, like main or release/1.2", req.Branch)
	}
	if p := strings.Trim(req.Path, "/"); p != "" && (strings.ContainsAny(req.Path, "#:") || path.Clean(p) != p || strings.HasPrefix(p, "..")) {
		fail("path", "%q is not a directory of the repository: give it relative to the repository's root, like web or services/api", req.Path)
	}
	repo := ""
	if req.Image == "" {
		fail("image", "no image: give the repository to push to with --image, like registry.example.com/team/web")
	} else if ref, err := imageref.Parse(req.Image); err != nil {
		fail("image", "%q is not an image repository: %v; give REGISTRY/REPOSITORY, like registry.example.com/team/web", req.Image, err)
	} else if ref.Pinned() || strings.Contains(req.Image[strings.LastIndex(req.Image, "/")+1:], ":") {
		fail("image", "%q has a tag or digest: give the repository alone (REGISTRY/REPOSITORY); each build is tagged with its commit and branch", req.Image)
	} else {
		repo = ref.Repository()
	}
	app, name, ok := strings.Cut(req.Service, "/")
	if !ok || app == "" || name == "" || strings.Contains(name, "/") {
		fail("service", "%q: name the service to roll out as APP/SERVICE, like shop/web", req.Service)
	} else if _, found := s.cfg.Cache.Service(store.ServiceKey(ns, app, name)); !found {
		fail("service", "service %s/%s not found in namespace %q: apply it first (`berth get services` lists the services)", app, name, ns)
	}
	if req.SignKey != "" {
		if s.cfg.Trust == nil {
			fail("sign", "this server keeps no signing keys: create the trigger without --sign")
		} else if _, err := s.cfg.Trust.PublicKey(ns, req.SignKey); err != nil {
			fail("sign", "%v", err)
		}
	}
	now := timestamppb.Now()
	return &berthv1.Trigger{
		Meta: &berthv1.Meta{Id: store.NewID(), CreatedAt: now, UpdatedAt: now}, Namespace: ns, Name: req.Name,
		Git: req.Git, Branch: req.Branch, Path: strings.Trim(req.Path, "/"), Image: repo, App: app, Service: name,
		SignKey: req.SignKey,
	}, errs
}

// redactTrigger is trig as answers give it: without its sealed secret.
func redactTrigger(trig *berthv1.Trigger) *berthv1.Trigger {
	out := proto.Clone(trig).(*berthv1.Trigger)
	out.SealedSecret = nil
	return out
}

// ListTriggers lists the triggers of a namespace (every namespace the
// caller may see with all_namespaces), each with its newest run.
func (s *Server) ListTriggers(ctx context.Context, req *berthv1.ListTriggersRequest) (*berthv1.ListTriggersResponse, error) {
	if s.cfg.Triggers == nil {
		return nil, errNoTriggers
	}
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	resp := &berthv1.ListTriggersResponse{}
	for _, trig := range s.cfg.Triggers.Triggers.List() {
		if !sc.has(trig.Namespace) {
			continue
		}
		sum := &berthv1.TriggerSummary{Trigger: redactTrigger(trig), HookPath: trigger.HookPath(trig.Namespace, trig.Name)}
		if runs := s.cfg.Triggers.RunsOf(trig.Namespace, trig.Name); len(runs) > 0 {
			sum.LastRun = runs[0]
		}
		resp.Triggers = append(resp.Triggers, sum)
	}
	sortTriggers(resp.Triggers)
	return resp, nil
}

func sortTriggers(list []*berthv1.TriggerSummary) {
	slices.SortFunc(list, func(a, b *berthv1.TriggerSummary) int {
		return cmp.Or(cmp.Compare(a.Trigger.Namespace, b.Trigger.Namespace), cmp.Compare(a.Trigger.Name, b.Trigger.Name))
	})
}

// ListTriggerRuns lists a trigger's recorded runs, newest first.
func (s *Server) ListTriggerRuns(ctx context.Context, req *berthv1.ListTriggerRunsRequest) (*berthv1.ListTriggerRunsResponse, error) {
	if s.cfg.Triggers == nil {
		return nil, errNoTriggers
	}
	ns := namespaceOf(req.Namespace)
	if _, ok := s.cfg.Triggers.Trigger(ns, req.Name); !ok {
		return nil, triggerNotFound(ns, req.Name)
	}
	return &berthv1.ListTriggerRunsResponse{Runs: s.cfg.Triggers.RunsOf(ns, req.Name)}, nil
}

// GetTriggerRunLog returns a run with its log.
func (s *Server) GetTriggerRunLog(ctx context.Context, req *berthv1.GetTriggerRunLogRequest) (*berthv1.GetTriggerRunLogResponse, error) {
	if s.cfg.Triggers == nil {
		return nil, errNoTriggers
	}
	ns := namespaceOf(req.Namespace)
	if req.Run == "" {
		return nil, status.Error(codes.InvalidArgument, "name the run: `berth trigger runs NAME` lists a trigger's runs")
	}
	run, err := s.cfg.Triggers.FindRun(ns, req.Run)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	l, err := s.cfg.Triggers.Log(ctx, run)
	if err != nil {
		return nil, storeError(err)
	}
	return &berthv1.GetTriggerRunLogResponse{Run: run, Log: l}, nil
}

// RemoveTrigger removes a trigger, its runs and their logs; the leader
// stops a run under way.
func (s *Server) RemoveTrigger(ctx context.Context, req *berthv1.RemoveTriggerRequest) (*berthv1.RemoveTriggerResponse, error) {
	if s.cfg.Triggers == nil {
		return nil, errNoTriggers
	}
	ns := namespaceOf(req.Namespace)
	ok, err := s.cfg.Triggers.Remove(ctx, ns, req.Name)
	if err != nil {
		return nil, storeError(err)
	}
	if !ok {
		return nil, triggerNotFound(ns, req.Name)
	}
	s.log.Info("trigger removed", "namespace", ns, "trigger", req.Name)
	return &berthv1.RemoveTriggerResponse{}, nil
}

func triggerNotFound(ns, name string) error {
	return status.Errorf(codes.NotFound, "trigger %q not found in namespace %q; `berth trigger ls` lists the triggers", name, ns)
}
