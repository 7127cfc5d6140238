package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newServer returns an API server on an embedded etcd in a temporary
// directory, with a running cache; everything stops when the test ends.
func newServer(t *testing.T) *Server {
	t.Helper()
	s := storetest.New(t)
	log := slog.New(slog.DiscardHandler)
	return New(Config{Store: s, Cache: storetest.NewCache(t, s), Log: log,
		APITokens: storetest.RunMirror(t, NewAPITokenMirror(s, nil, log)), Users: storetest.RunMirror(t, NewUserMirror(s, log))})
}

// etcdRevision is etcd's current revision: it moves with every write. Events
// are written behind the changes they describe: they land first.
func etcdRevision(t *testing.T, s *Server) int64 {
	t.Helper()
	if err := s.cfg.Store.FlushEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := s.cfg.Store.Client().Get(context.Background(), "revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func svc(name, image string, replicas uint64) *berthv1.Service {
	return &berthv1.Service{Name: name, Spec: &berthv1.ServiceSpec{Image: image, Replicas: replicas}}
}

// withDeps makes s depend on the services named, started.
func withDeps(s *berthv1.Service, deps ...string) *berthv1.Service {
	for _, d := range deps {
		s.Spec.DependsOn = append(s.Spec.DependsOn, &berthv1.Dependency{Service: d, Condition: berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED})
	}
	return s
}

// change is one expected line of an Apply plan.
type change struct {
	action berthv1.ChangeAction
	fields []string
}

func TestApplyPlans(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	const (
		create    = berthv1.ChangeAction_CHANGE_ACTION_CREATE
		update    = berthv1.ChangeAction_CHANGE_ACTION_UPDATE
		remove    = berthv1.ChangeAction_CHANGE_ACTION_REMOVE
		unchanged = berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED
	)
	steps := []struct {
		name     string
		services []*berthv1.Service
		dryRun   bool
		want     map[string]change
		versions map[string]uint64 // stored spec versions after the step
		writes   bool
	}{
		{name: "create", services: []*berthv1.Service{svc("web", "busybox", 2), svc("db", "busybox", 1)},
			want:     map[string]change{"web": {create, nil}, "db": {create, nil}},
			versions: map[string]uint64{"web": 1, "db": 1}, writes: true},
		{name: "same again", services: []*berthv1.Service{svc("web", "busybox", 2), svc("db", "busybox", 1)},
			want:     map[string]change{"web": {unchanged, nil}, "db": {unchanged, nil}},
			versions: map[string]uint64{"web": 1, "db": 1}},
		{name: "dry run", services: []*berthv1.Service{svc("web", "busybox:1.36", 2)}, dryRun: true,
			want:     map[string]change{"web": {update, []string{"image"}}, "db": {remove, nil}},
			versions: map[string]uint64{"web": 1, "db": 1}},
		{name: "replicas only", services: []*berthv1.Service{svc("web", "busybox", 5), svc("db", "busybox", 1)},
			want:     map[string]change{"web": {update, []string{"replicas"}}, "db": {unchanged, nil}},
			versions: map[string]uint64{"web": 1, "db": 1}, writes: true},
		{name: "dependencies only", services: []*berthv1.Service{withDeps(svc("web", "busybox", 5), "db"), svc("db", "busybox", 1)},
			want:     map[string]change{"web": {update, []string{"depends_on"}}, "db": {unchanged, nil}},
			versions: map[string]uint64{"web": 1, "db": 1}, writes: true},
		{name: "image and replicas", services: []*berthv1.Service{withDeps(svc("web", "busybox:1.36", 3), "db"), svc("db", "busybox", 1)},
			want:     map[string]change{"web": {update, []string{"image", "replicas"}}, "db": {unchanged, nil}},
			versions: map[string]uint64{"web": 2, "db": 1}, writes: true},
		{name: "remove", services: []*berthv1.Service{svc("web", "busybox:1.36", 3)},
			want:     map[string]change{"web": {update, []string{"depends_on"}}, "db": {remove, nil}},
			versions: map[string]uint64{"web": 2}, writes: true},
	}
	for _, st := range steps {
		before := etcdRevision(t, s)
		resp, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: st.services, DryRun: st.dryRun})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := map[string]change{}
		for _, c := range resp.Changes {
			got[c.Service] = change{c.Action, c.Fields}
		}
		if len(got) != len(st.want) {
			t.Errorf("%s: changes %v, want %v", st.name, got, st.want)
		}
		for name, w := range st.want {
			if g, ok := got[name]; !ok || g.action != w.action || !slices.Equal(g.fields, w.fields) {
				t.Errorf("%s: %s: got %v, want %v", st.name, name, g, w)
			}
		}
		if wrote := etcdRevision(t, s) != before; wrote != st.writes {
			t.Errorf("%s: wrote = %v, want %v", st.name, wrote, st.writes)
		}
		stored := map[string]uint64{}
		for _, sv := range s.cfg.Cache.Services(store.AppServicesPrefix(DefaultNamespace, "shop")) {
			stored[sv.Name] = sv.SpecVersion
			if sv.GetSpec().GetStopSignal() != "SIGTERM" || sv.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_REPLICATED {
				t.Errorf("%s: %s is stored without its defaults: %v", st.name, sv.Name, sv.Spec)
			}
		}
		if len(stored) != len(st.versions) {
			t.Errorf("%s: stored %v, want %v", st.name, stored, st.versions)
		}
		for name, v := range st.versions {
			if stored[name] != v {
				t.Errorf("%s: %s has spec version %d, want %d", st.name, name, stored[name], v)
			}
		}
	}
}

func TestApplyListsRemovalsInOrder(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	names := []string{"a", "b", "c", "d", "e"}
	var services []*berthv1.Service
	for _, n := range names {
		services = append(services, svc(n, "busybox", 1))
	}
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: services}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range resp.Changes {
		got = append(got, c.Service)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("removals listed as %v, want %v", got, names)
	}
}

func TestApplyRejectsAnInvalidRequestWhole(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	before := etcdRevision(t, s)
	_, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{
		svc("web", "busybox", 1),      // valid, yet not written either
		svc("api", "", 1),             // no image
		svc("Bad Name", "busybox", 1), // invalid name
	}})
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	slices.Sort(fields)
	if want := []string{"api/image", "services[2].name"}; !slices.Equal(fields, want) {
		t.Fatalf("field violations %v, want %v", fields, want)
	}
	if etcdRevision(t, s) != before {
		t.Fatal("an invalid request wrote to the store")
	}
}

func TestDeleteApp(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	for _, app := range []string{"shop", "blog"} {
		if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: app, Services: []*berthv1.Service{svc("web", "busybox", 1), svc("db", "busybox", 1)}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.DeleteApp(ctx, &berthv1.DeleteAppRequest{App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	removed := slices.Sorted(slices.Values(resp.RemovedServices))
	if !slices.Equal(removed, []string{"db", "web"}) {
		t.Fatalf("removed %v, want db and web", removed)
	}
	if left := s.cfg.Cache.Services(store.AppServicesPrefix(DefaultNamespace, "shop")); len(left) != 0 {
		t.Fatalf("%d services of the deleted app remain", len(left))
	}
	if left := s.cfg.Cache.Services(store.AppServicesPrefix(DefaultNamespace, "blog")); len(left) != 2 {
		t.Fatalf("another app lost services: %d left", len(left))
	}
	if _, err := s.DeleteApp(ctx, &berthv1.DeleteAppRequest{App: "shop"}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleting a missing app: got %v, want NotFound", err)
	}
}

func TestListTasksViews(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	base := time.Now().Add(-time.Hour)
	run, stop := berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_SHUTDOWN
	mk := func(id, service string, slot uint64, node string, age int, desired, state berthv1.TaskState) *berthv1.Task {
		return &berthv1.Task{
			Meta:      &berthv1.Meta{Id: id, CreatedAt: timestamppb.New(base.Add(time.Duration(age) * time.Minute))},
			Namespace: DefaultNamespace, App: "shop", Service: service, ServiceId: "id-" + service,
			Slot: slot, NodeId: node, DesiredState: desired, Status: &berthv1.TaskStatus{State: state},
		}
	}
	tasks := []*berthv1.Task{
		// slot 1: a failed attempt, then the running replacement.
		mk("s1-old", "web", 1, "n1", 1, run, berthv1.TaskState_TASK_STATE_FAILED),
		mk("s1-new", "web", 1, "n1", 2, run, berthv1.TaskState_TASK_STATE_RUNNING),
		// slot 2: only finished tasks: the newest stands for the slot.
		mk("s2-old", "web", 2, "n1", 1, run, berthv1.TaskState_TASK_STATE_FAILED),
		mk("s2-new", "web", 2, "n2", 2, run, berthv1.TaskState_TASK_STATE_COMPLETE),
		// slot 3: one still stopping, its replacement pending.
		mk("s3-old", "web", 3, "n1", 1, stop, berthv1.TaskState_TASK_STATE_RUNNING),
		mk("s3-new", "web", 3, "", 2, run, berthv1.TaskState_TASK_STATE_PENDING),
		// slot 4: one still stopping, and a newer task already failed.
		mk("s4-old", "web", 4, "n2", 1, stop, berthv1.TaskState_TASK_STATE_RUNNING),
		mk("s4-new", "web", 4, "n2", 2, run, berthv1.TaskState_TASK_STATE_FAILED),
		// a global service's task on n2, shut down.
		mk("g-n2", "agent", 0, "n2", 1, stop, berthv1.TaskState_TASK_STATE_SHUTDOWN),
	}
	var txn store.Txn
	for _, tk := range tasks {
		txn.Create(store.TaskKey(tk.Namespace, tk.App, tk.Service, tk.GetMeta().GetId()), tk)
	}
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *berthv1.ListTasksRequest
		want []string // in order
	}{
		{"default view", &berthv1.ListTasksRequest{},
			[]string{"g-n2", "s1-new", "s2-new", "s3-new", "s3-old", "s4-new", "s4-old"}},
		{"all", &berthv1.ListTasksRequest{All: true},
			[]string{"g-n2", "s1-new", "s1-old", "s2-new", "s2-old", "s3-new", "s3-old", "s4-new", "s4-old"}},
		{"one service", &berthv1.ListTasksRequest{Service: "agent"}, []string{"g-n2"}},
		{"one node", &berthv1.ListTasksRequest{NodeId: "n2"}, []string{"g-n2", "s2-new", "s4-new", "s4-old"}},
		{"another app", &berthv1.ListTasksRequest{App: "blog"}, nil},
	}
	for _, tt := range tests {
		resp, err := s.ListTasks(ctx, tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []string
		for _, tk := range resp.Tasks {
			got = append(got, tk.GetMeta().GetId())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestApplyTooLargeSaysHowToFix: an app whose services, networks and
// subnet claims do not fit in one etcd transaction is refused as bad input
// that says what to do, and nothing is written.
func TestApplyTooLargeSaysHowToFix(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	var services []*berthv1.Service
	for i := range 130 {
		services = append(services, svc(fmt.Sprintf("s%03d", i), "busybox", 1))
	}
	_, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "big", Services: services})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "split the app") {
		t.Fatalf("apply of 130 services: %v, want InvalidArgument saying to split the app", err)
	}
	if got := s.cfg.Cache.Services(store.AppServicesPrefix("default", "big")); len(got) != 0 {
		t.Fatalf("a refused apply wrote %d services", len(got))
	}
}
