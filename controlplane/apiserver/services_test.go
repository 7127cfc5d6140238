package apiserver

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// global makes s a global service.
func global(s *berthv1.Service) *berthv1.Service {
	s.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	return s
}

func apply(t *testing.T, s *Server, app string, services ...*berthv1.Service) {
	t.Helper()
	if _, err := s.Apply(context.Background(), &berthv1.ApplyRequest{App: app, Services: services}); err != nil {
		t.Fatal(err)
	}
}

// wantCode fails the test unless err has code and its message mentions
// every one of words.
func wantCode(t *testing.T, what string, err error, code codes.Code, words ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v, want %v", what, err, code)
		return
	}
	for _, w := range words {
		if !strings.Contains(status.Convert(err).Message(), w) {
			t.Errorf("%s: message %q does not mention %q", what, status.Convert(err).Message(), w)
		}
	}
}

func TestScaleService(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	apply(t, s, "shop", svc("web", "busybox", 2), global(svc("agent", "busybox", 0)))
	apply(t, s, "shop", svc("web", "busybox:1.36", 2), global(svc("agent", "busybox", 0)))
	tests := []struct {
		name     string
		req      *berthv1.ScaleServiceRequest
		code     codes.Code
		words    []string
		replicas uint64
		writes   bool
	}{
		{name: "up", req: &berthv1.ScaleServiceRequest{App: "shop", Service: "web", Replicas: 5}, replicas: 5, writes: true},
		{name: "same count", req: &berthv1.ScaleServiceRequest{App: "shop", Service: "web", Replicas: 5}, replicas: 5},
		{name: "to zero", req: &berthv1.ScaleServiceRequest{Namespace: DefaultNamespace, App: "shop", Service: "web"}, replicas: 0, writes: true},
		{name: "global", req: &berthv1.ScaleServiceRequest{App: "shop", Service: "agent", Replicas: 3},
			code: codes.FailedPrecondition, words: []string{"shop/agent", "global"}},
		{name: "missing", req: &berthv1.ScaleServiceRequest{App: "shop", Service: "api", Replicas: 3},
			code: codes.NotFound, words: []string{"service shop/api not found"}},
		{name: "other namespace", req: &berthv1.ScaleServiceRequest{Namespace: "team", App: "shop", Service: "web", Replicas: 3},
			code: codes.NotFound, words: []string{"team"}},
		{name: "no app", req: &berthv1.ScaleServiceRequest{Service: "web", Replicas: 3}, code: codes.InvalidArgument, words: []string{"APP/SERVICE"}},
	}
	for _, tt := range tests {
		before := etcdRevision(t, s)
		got, err := s.ScaleService(ctx, tt.req)
		if tt.code != codes.OK {
			wantCode(t, tt.name, err, tt.code, tt.words...)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if wrote := etcdRevision(t, s) != before; wrote != tt.writes {
			t.Errorf("%s: wrote = %v, want %v", tt.name, wrote, tt.writes)
		}
		cached := stored(t, s, "shop", "web")
		if !proto.Equal(got, cached) {
			t.Errorf("%s: returned %v, the cache holds %v", tt.name, got, cached)
		}
		if cached.Spec.Replicas != tt.replicas || cached.SpecVersion != 2 || len(cached.Revisions) != 1 || cached.ChangeCause != "apply" {
			t.Errorf("%s: replicas %d, version %d, %d revisions, cause %q; want %d replicas, version 2, 1 revision, apply",
				tt.name, cached.Spec.Replicas, cached.SpecVersion, len(cached.Revisions), cached.ChangeCause, tt.replicas)
		}
		if cached.UpdateStatus.GetState() != berthv1.UpdateState_UPDATE_STATE_UPDATING || cached.UpdateStatus.GetFromVersion() != 1 {
			t.Errorf("%s: scaling touched the update status: %v", tt.name, cached.UpdateStatus)
		}
	}
}

func TestRollbackService(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	apply(t, s, "shop", svc("web", "busybox:1.35", 2), svc("db", "busybox", 1))
	apply(t, s, "shop", svc("web", "busybox:1.36", 2), svc("db", "busybox", 1))
	// In-place changes after the update: they stay through a rollback.
	scaled := withDeps(svc("web", "busybox:1.36", 4), "db")
	scaled.Spec.UpdateConfig = &berthv1.UpdateConfig{Parallelism: 3}
	apply(t, s, "shop", scaled, svc("db", "busybox", 1))

	tests := []struct {
		name      string
		to        uint64
		code      codes.Code
		words     []string
		image     string
		version   uint64
		revisions []uint64
	}{
		{name: "to the previous", image: "busybox:1.35", version: 3, revisions: []uint64{1, 2}},
		{name: "to a named version", to: 2, image: "busybox:1.36", version: 4, revisions: []uint64{1, 2, 3}},
		{name: "to the current version", to: 4, code: codes.FailedPrecondition, words: []string{"already the current", "1, 2, 3"}},
		{name: "to a version not kept", to: 9, code: codes.NotFound, words: []string{"no version 9", "1, 2, 3"}},
	}
	for _, tt := range tests {
		got, err := s.RollbackService(ctx, &berthv1.RollbackServiceRequest{App: "shop", Service: "web", ToVersion: tt.to})
		if tt.code != codes.OK {
			wantCode(t, tt.name, err, tt.code, tt.words...)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		cached := stored(t, s, "shop", "web")
		if !proto.Equal(got, cached) {
			t.Errorf("%s: returned %v, the cache holds %v", tt.name, got, cached)
		}
		if cached.Spec.Image != tt.image || cached.SpecVersion != tt.version || !slices.Equal(revisionVersions(cached), tt.revisions) {
			t.Errorf("%s: image %s at version %d with revisions %v, want %s at %d with %v",
				tt.name, cached.Spec.Image, cached.SpecVersion, revisionVersions(cached), tt.image, tt.version, tt.revisions)
		}
		target := tt.to
		if target == 0 {
			target = 1
		}
		wantCause := "rollback to version " + strconv.FormatUint(target, 10)
		us := cached.UpdateStatus
		if cached.ChangeCause != wantCause || us.GetState() != berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED ||
			us.GetFromVersion() != tt.version-1 || us.GetMessage() != wantCause+" requested" || us.GetStartedAt() == nil {
			t.Errorf("%s: cause %q, update status %v; want %q, rollback started from %d", tt.name, cached.ChangeCause, us, wantCause, tt.version-1)
		}
		if cached.Spec.Replicas != 4 || cached.Spec.UpdateConfig.GetParallelism() != 3 || len(cached.Spec.DependsOn) != 1 {
			t.Errorf("%s: the in-place fields did not stay: %v", tt.name, cached.Spec)
		}
	}

	for _, tt := range []struct {
		name  string
		req   *berthv1.RollbackServiceRequest
		code  codes.Code
		words []string
	}{
		{"never updated", &berthv1.RollbackServiceRequest{App: "shop", Service: "db"}, codes.FailedPrecondition, []string{"shop/db", "no earlier version"}},
		{"missing", &berthv1.RollbackServiceRequest{App: "shop", Service: "api"}, codes.NotFound, []string{"service shop/api not found"}},
		{"no service", &berthv1.RollbackServiceRequest{App: "shop"}, codes.InvalidArgument, []string{"APP/SERVICE"}},
	} {
		before := etcdRevision(t, s)
		_, err := s.RollbackService(ctx, tt.req)
		wantCode(t, tt.name, err, tt.code, tt.words...)
		if etcdRevision(t, s) != before {
			t.Errorf("%s: a failed rollback wrote", tt.name)
		}
	}
}

func TestRebalance(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	apply(t, s, "shop", svc("web", "busybox", 2), svc("db", "busybox", 1), global(svc("agent", "busybox", 0)))
	apply(t, s, "blog", svc("api", "busybox", 1))
	tests := []struct {
		name  string
		req   *berthv1.RebalanceRequest
		want  []string
		code  codes.Code
		words []string
	}{
		{name: "namespace", req: &berthv1.RebalanceRequest{}, want: []string{"blog/api", "shop/db", "shop/web"}},
		{name: "app", req: &berthv1.RebalanceRequest{App: "shop"}, want: []string{"shop/db", "shop/web"}},
		{name: "service", req: &berthv1.RebalanceRequest{App: "shop", Service: "web"}, want: []string{"shop/web"}},
		{name: "empty namespace", req: &berthv1.RebalanceRequest{Namespace: "team"}},
		{name: "global service", req: &berthv1.RebalanceRequest{App: "shop", Service: "agent"}, code: codes.FailedPrecondition, words: []string{"shop/agent", "global"}},
		{name: "missing service", req: &berthv1.RebalanceRequest{App: "shop", Service: "api"}, code: codes.NotFound, words: []string{"service shop/api not found"}},
		{name: "missing app", req: &berthv1.RebalanceRequest{App: "wiki"}, code: codes.NotFound, words: []string{`app "wiki" not found`}},
		{name: "service without app", req: &berthv1.RebalanceRequest{Service: "web"}, code: codes.InvalidArgument, words: []string{"APP/SERVICE"}},
	}
	for _, tt := range tests {
		before := map[string]*berthv1.Service{}
		for _, sv := range s.cfg.Cache.Services(store.ServicesPrefix) {
			before[sv.App+"/"+sv.Name] = sv
		}
		resp, err := s.Rebalance(ctx, tt.req)
		if tt.code != codes.OK {
			wantCode(t, tt.name, err, tt.code, tt.words...)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(resp.Services, tt.want) {
			t.Errorf("%s: rebalanced %v, want %v", tt.name, resp.Services, tt.want)
		}
		for _, sv := range s.cfg.Cache.Services(store.ServicesPrefix) {
			name := sv.App + "/" + sv.Name
			old := before[name]
			if !slices.Contains(tt.want, name) {
				if sv.GetMeta().GetVersion() != old.GetMeta().GetVersion() {
					t.Errorf("%s: %s was written", tt.name, name)
				}
				continue
			}
			rb := sv.Rebalance
			if rb.GetState() != berthv1.RebalanceState_REBALANCE_STATE_REQUESTED || rb.GetRequestedAt() == nil || rb.GetMoved() != 0 {
				t.Errorf("%s: %s rebalance status %v, want requested", tt.name, name, rb)
			}
			if sv.SpecVersion != old.SpecVersion || !proto.Equal(sv.Spec, old.Spec) {
				t.Errorf("%s: %s changed its spec", tt.name, name)
			}
		}
	}
}

func TestGuardedUpdateLandsOnTopOfARacingWrite(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	apply(t, s, "shop", svc("web", "busybox", 2))
	key := store.ServiceKey(DefaultNamespace, "shop", "web")
	// race writes a label to the stored service behind the cache's back,
	// as another server would.
	race := func(label string) {
		cur := &berthv1.Service{}
		if err := s.cfg.Store.Get(ctx, key, cur); err != nil {
			t.Fatal(err)
		}
		if cur.Spec.Labels == nil {
			cur.Spec.Labels = map[string]string{}
		}
		cur.Spec.Labels[label] = "set"
		var txn store.Txn
		txn.Update(key, cur)
		if _, err := s.cfg.Store.Commit(ctx, &txn); err != nil {
			t.Fatal(err)
		}
	}

	calls := 0
	got, err := guardedUpdate(ctx, s, key, s.readService(DefaultNamespace, "shop", "web"), func(sv *berthv1.Service) error {
		calls++
		if calls == 1 {
			race("first")
		}
		sv.Spec.Replicas = 9
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cached := stored(t, s, "shop", "web")
	if calls != 2 || cached.Spec.Replicas != 9 || cached.Spec.Labels["first"] != "set" || !proto.Equal(got, cached) {
		t.Fatalf("after %d tries the service is %v, want replicas 9 beside the racing label", calls, cached.Spec)
	}

	// A writer that always loses gives up with Aborted and writes nothing.
	calls = 0
	_, err = guardedUpdate(ctx, s, key, s.readService(DefaultNamespace, "shop", "web"), func(sv *berthv1.Service) error {
		calls++
		race("again")
		sv.Spec.Replicas = 1
		return nil
	})
	wantCode(t, "always racing", err, codes.Aborted, "try again")
	if calls != applyAttempts+1 || stored(t, s, "shop", "web").Spec.Replicas != 9 {
		t.Fatalf("after %d tries replicas are %d, want %d tries and replicas 9", calls, stored(t, s, "shop", "web").Spec.Replicas, applyAttempts+1)
	}
}

func TestRestartServiceMakesAVersionThatApplyKeeps(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	apply(t, s, "shop", svc("web", "busybox", 2))
	got, err := s.RestartService(ctx, &berthv1.RestartServiceRequest{App: "shop", Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if got.SpecVersion != 2 || got.Spec.RestartGeneration != 1 || got.ChangeCause != "restart" ||
		got.GetUpdateStatus().GetState() != berthv1.UpdateState_UPDATE_STATE_UPDATING {
		t.Fatalf("after restart: version %d, generation %d, cause %q, update %v; want 2, 1, restart, updating",
			got.SpecVersion, got.Spec.RestartGeneration, got.ChangeCause, got.GetUpdateStatus().GetState())
	}
	// The same file again changes nothing: the restart is not undone.
	changes := applyOne(t, s, "shop", svc("web", "busybox", 2))
	if a := changes["web"].GetAction(); a != berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED {
		t.Fatalf("re-apply after restart: %v, want unchanged", a)
	}
	if cur := stored(t, s, "shop", "web"); cur.SpecVersion != 2 || cur.Spec.RestartGeneration != 1 {
		t.Fatalf("re-apply moved the service to version %d, generation %d", cur.SpecVersion, cur.Spec.RestartGeneration)
	}
	_, err = s.RestartService(ctx, &berthv1.RestartServiceRequest{App: "shop", Service: "api"})
	wantCode(t, "missing", err, codes.NotFound, "shop/api")
}
