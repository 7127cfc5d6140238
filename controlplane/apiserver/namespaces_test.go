package apiserver

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const gib = 1 << 30

// reserving is a service of image busybox with replicas, each reserving
// memory bytes.
func reserving(name string, replicas uint64, memory int64) *berthv1.Service {
	s := svc(name, "busybox", replicas)
	s.Spec.Reservations = &berthv1.Resources{MemoryBytes: memory}
	return s
}

func applyIn(ctx context.Context, s *Server, ns, app string, dryRun bool, services ...*berthv1.Service) error {
	_, err := s.Apply(ctx, &berthv1.ApplyRequest{Namespace: ns, App: app, Services: services, DryRun: dryRun})
	return err
}

func namespaceNames(t *testing.T, s *Server, ctx context.Context) []string {
	t.Helper()
	resp, err := s.ListNamespaces(ctx, &berthv1.ListNamespacesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range resp.Namespaces {
		out = append(out, n.GetNamespace().GetName())
	}
	return out
}

func TestNamespaceLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)

	_, err := s.CreateNamespace(ctx, &berthv1.CreateNamespaceRequest{Name: "Team_A"})
	wantStatus(t, "bad name", err, codes.InvalidArgument, `invalid namespace name "Team_A"`)
	_, err = s.CreateNamespace(ctx, &berthv1.CreateNamespaceRequest{Name: "team-a", Quota: &berthv1.NamespaceQuota{Tasks: -1}})
	wantStatus(t, "negative quota", err, codes.InvalidArgument, "cannot be negative")
	if _, err := s.CreateNamespace(ctx, &berthv1.CreateNamespaceRequest{Name: "team-a", Quota: &berthv1.NamespaceQuota{Tasks: 10}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateNamespace(ctx, &berthv1.CreateNamespaceRequest{Name: "team-a"})
	wantStatus(t, "create twice", err, codes.AlreadyExists, "namespace team-a exists already")

	// A namespace used without a record is listed, without a quota.
	if err := applyIn(ctx, s, "team-b", "web", false, reserving("api", 2, gib)); err != nil {
		t.Fatal(err)
	}
	if err := applyIn(ctx, s, "team-a", "shop", false, reserving("db", 3, gib)); err != nil {
		t.Fatal(err)
	}
	if got := namespaceNames(t, s, ctx); !slices.Equal(got, []string{"default", "team-a", "team-b"}) {
		t.Errorf("namespaces = %v", got)
	}
	got, err := s.GetNamespace(ctx, &berthv1.GetNamespaceRequest{Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if u := got.GetUsage(); u.Tasks != 3 || u.MemoryBytes != 3*gib || u.Apps != 1 || u.Services != 1 || got.GetNamespace().GetQuota().GetTasks() != 10 {
		t.Errorf("team-a = %v", got)
	}
	_, err = s.GetNamespace(ctx, &berthv1.GetNamespaceRequest{Namespace: "nowhere"})
	wantStatus(t, "get unknown", err, codes.NotFound, "berth namespace ls")

	// A caller limited to some namespaces sees only those.
	limited := access.NewContext(ctx, access.Principal{Kind: "token", Name: "ci", Role: identity.RoleViewer, Namespaces: []string{"team-b"}})
	if got := namespaceNames(t, s, limited); !slices.Equal(got, []string{"team-b"}) {
		t.Errorf("namespaces of a team-b viewer = %v", got)
	}

	// Update gives a namespace in use a record; a quota below the use is
	// allowed.
	if _, err := s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "team-b", Quota: &berthv1.NamespaceQuota{Tasks: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "nowhere", Quota: &berthv1.NamespaceQuota{Tasks: 1}})
	wantStatus(t, "update unknown", err, codes.NotFound)

	_, err = s.RemoveNamespace(ctx, &berthv1.RemoveNamespaceRequest{Name: "team-a"})
	wantStatus(t, "remove while in use", err, codes.FailedPrecondition, "namespace team-a still holds apps shop")
	_, err = s.RemoveNamespace(ctx, &berthv1.RemoveNamespaceRequest{Name: "default"})
	wantStatus(t, "remove default", err, codes.FailedPrecondition, "cannot be removed")
	if _, err := s.DeleteApp(ctx, &berthv1.DeleteAppRequest{Namespace: "team-a", App: "shop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveNamespace(ctx, &berthv1.RemoveNamespaceRequest{Name: "team-a"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.RemoveNamespace(ctx, &berthv1.RemoveNamespaceRequest{Name: "team-a"})
	wantStatus(t, "remove twice", err, codes.NotFound)
	if got := namespaceNames(t, s, ctx); !slices.Equal(got, []string{"default", "team-b"}) {
		t.Errorf("namespaces after remove = %v", got)
	}
}

func TestQuotaRefusesWithTheNumbers(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	if _, err := s.CreateNamespace(ctx, &berthv1.CreateNamespaceRequest{Name: "team-a", Quota: &berthv1.NamespaceQuota{MemoryBytes: 4 * gib, Tasks: 5, Volumes: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := applyIn(ctx, s, "team-a", "web", false, reserving("api", 3, gib)); err != nil {
		t.Fatal(err)
	}
	err := applyIn(ctx, s, "team-a", "web", false, reserving("api", 5, gib))
	wantStatus(t, "apply over memory", err, codes.ResourceExhausted,
		"namespace team-a: memory quota 4 GiB; in use 3 GiB; this apply needs 2 GiB more (web/api: 5 replicas × 1 GiB)", "berth namespace update")
	err = applyIn(ctx, s, "team-a", "web", true, reserving("api", 5, gib))
	wantStatus(t, "dry run over memory", err, codes.ResourceExhausted, "memory quota 4 GiB")
	// Another app counts against the same namespace.
	err = applyIn(ctx, s, "team-a", "jobs", false, reserving("worker", 2, gib))
	wantStatus(t, "second app", err, codes.ResourceExhausted, "in use 3 GiB; this apply needs 2 GiB more (jobs/worker: 2 replicas × 1 GiB)")
	// Another namespace does not.
	if err := applyIn(ctx, s, "team-b", "web", false, reserving("api", 50, gib)); err != nil {
		t.Fatal(err)
	}

	_, err = s.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: "team-a", App: "web", Service: "api", Replicas: 6})
	wantStatus(t, "scale over", err, codes.ResourceExhausted, "tasks quota 5 tasks; in use 3 tasks; this scale needs 3 tasks more", "memory quota 4 GiB; in use 3 GiB; this scale needs 3 GiB more")
	if _, err := s.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: "team-a", App: "web", Service: "api", Replicas: 4}); err != nil {
		t.Fatalf("scale within quota: %v", err)
	}
	// Lowered under the use: scaling down still works, up does not.
	if _, err := s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "team-a", Quota: &berthv1.NamespaceQuota{MemoryBytes: gib}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: "team-a", App: "web", Service: "api", Replicas: 2}); err != nil {
		t.Fatalf("scale down over quota: %v", err)
	}
	if _, err := s.RestartService(ctx, &berthv1.RestartServiceRequest{Namespace: "team-a", App: "web", Service: "api"}); err != nil {
		t.Fatalf("restart needs nothing more: %v", err)
	}
	_, err = s.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: "team-a", App: "web", Service: "api", Replicas: 3})
	wantStatus(t, "scale up over a lowered quota", err, codes.ResourceExhausted, "memory quota 1 GiB; in use 2 GiB; this scale needs 1 GiB more")

	// Named volumes: one per slot.
	if _, err := s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "team-a", Quota: &berthv1.NamespaceQuota{Volumes: 2}}); err != nil {
		t.Fatal(err)
	}
	db := svc("db", "busybox", 3)
	db.Spec.Mounts = []*berthv1.Mount{{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "store_data", Target: "/data"}}
	_, err = s.Apply(ctx, &berthv1.ApplyRequest{Namespace: "team-a", App: "store", Services: []*berthv1.Service{db},
		Volumes: []*berthv1.AppVolume{{Name: "store_data", Key: "data"}}})
	wantStatus(t, "volumes", err, codes.ResourceExhausted, "volumes quota 2 volumes; in use 0 volumes; this apply needs 3 volumes more (store/db: 3 volumes)")
}

func TestQuotaHoldsUnderConcurrentApplies(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	if _, err := s.CreateNamespace(ctx, &berthv1.CreateNamespaceRequest{Name: "team-a", Quota: &berthv1.NamespaceQuota{Tasks: 4}}); err != nil {
		t.Fatal(err)
	}
	// Each app fits alone; no two fit together.
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = applyIn(ctx, s, "team-a", string(rune('a'+i)), false, svc("api", "busybox", 3))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case status.Code(err) == codes.ResourceExhausted, status.Code(err) == codes.Aborted:
		default:
			t.Errorf("apply: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d applies passed a quota that admits one: %v", ok, errs)
	}
	got, err := s.GetNamespace(ctx, &berthv1.GetNamespaceRequest{Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetUsage().GetTasks() != 3 {
		t.Errorf("use = %v", got.GetUsage())
	}
}

func TestReplicaCap(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	if err := applyIn(ctx, s, "", "web", false, svc("api", "busybox", 1)); err != nil {
		t.Fatal(err)
	}
	_, err := s.ScaleService(ctx, &berthv1.ScaleServiceRequest{App: "web", Service: "api", Replicas: 100000000000})
	wantStatus(t, "scale far over", err, codes.InvalidArgument, "scaling service web/api: 100000000000 replicas is over the cluster's cap of 10000")
	err = applyIn(ctx, s, "", "web", false, svc("api", "busybox", 10001))
	wantStatus(t, "apply over", err, codes.InvalidArgument, `service "api": deploy.replicas: 10001 replicas is over the cluster's cap of 10000`)

	_, err = s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{MaxReplicas: 2_000_000}})
	wantStatus(t, "cap over the limit", err, codes.InvalidArgument, "over the highest cap of 1000000")
	if _, err := s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{MaxReplicas: 5}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.ScaleService(ctx, &berthv1.ScaleServiceRequest{App: "web", Service: "api", Replicas: 6})
	wantStatus(t, "scale over a set cap", err, codes.InvalidArgument, "over the cluster's cap of 5")
	if _, err := s.ScaleService(ctx, &berthv1.ScaleServiceRequest{App: "web", Service: "api", Replicas: 5}); err != nil {
		t.Fatal(err)
	}
}
