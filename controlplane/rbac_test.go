package controlplane

import (
	"context"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func refused(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("%s: got %v, want PermissionDenied", what, err)
		return
	}
	for _, w := range words {
		if !strings.Contains(status.Convert(err).Message(), w) {
			t.Errorf("%s: message %q does not say %q", what, status.Convert(err).Message(), w)
		}
	}
}

func shop(ns string) *berthv1.ApplyRequest {
	return &berthv1.ApplyRequest{Namespace: ns, App: "shop", Services: []*berthv1.Service{
		{Name: "web", Spec: &berthv1.ServiceSpec{Image: "busybox", Replicas: 1}},
	}}
}

func TestDeployerStaysInItsNamespace(t *testing.T) {
	ctx := context.Background()
	c := newRBACCluster(t)
	admin := c.admin(t)
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := admin.Apply(ctx, shop(ns)); err != nil {
			t.Fatalf("apply in %s: %v", ns, err)
		}
	}
	dep, _ := c.token(t, admin, "deployer-a", "deployer", "team-a")

	_, err := dep.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: "team-b"})
	refused(t, "list in team-b", err, "team-b", "team-a")
	_, err = dep.Apply(ctx, shop("team-b"))
	refused(t, "apply in team-b", err)
	_, err = dep.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: "team-b", App: "shop", Service: "web", Replicas: 3})
	refused(t, "scale in team-b", err)
	exec, err := dep.Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec.Send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Start{Start: &berthv1.ExecStart{Namespace: "team-b", App: "shop", Service: "web", Command: []string{"sh"}}}})
	_, err = exec.Recv()
	refused(t, "exec in team-b", err)
	logs, err := dep.Logs(ctx, &berthv1.LogsRequest{Namespace: "team-b", App: "shop"})
	if err == nil {
		_, err = logs.Recv()
	}
	refused(t, "logs in team-b", err)

	// Its own namespace works.
	if _, err := dep.Apply(ctx, shop("team-a")); err != nil {
		t.Errorf("apply in team-a: %v", err)
	}
	if _, err := dep.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: "team-a", App: "shop", Service: "web", Replicas: 2}); err != nil {
		t.Errorf("scale in team-a: %v", err)
	}

	// -A answers only the namespaces the caller may see; an admin sees all.
	for _, cl := range []struct {
		name   string
		client berthv1.ClusterServiceClient
		want   string
	}{{"deployer of team-a", dep, "team-a"}, {"admin", admin, "team-a,team-b"}} {
		svcs, err := cl.client.ListServices(ctx, &berthv1.ListServicesRequest{AllNamespaces: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range svcs.GetServices() {
			got = append(got, s.GetService().GetNamespace())
		}
		apps, err := cl.client.ListApps(ctx, &berthv1.ListAppsRequest{AllNamespaces: true})
		if err != nil {
			t.Fatal(err)
		}
		var gotApps []string
		for _, a := range apps.GetApps() {
			gotApps = append(gotApps, a.GetNamespace())
		}
		if strings.Join(got, ",") != cl.want || strings.Join(gotApps, ",") != cl.want {
			t.Errorf("%s -A: services in %v, apps in %v, want %s", cl.name, got, gotApps, cl.want)
		}
	}

	// A viewer reads but does not scale.
	cert, key := c.user(t, admin, "vera", "viewer", "team-a")
	viewer := berthv1.NewClusterServiceClient(c.dial(t, c.addr, cert, key, ""))
	if _, err := viewer.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: "team-a"}); err != nil {
		t.Errorf("viewer list: %v", err)
	}
	_, err = viewer.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: "team-a", App: "shop", Service: "web", Replicas: 3})
	refused(t, "viewer scale", err, "user/vera", "viewer", "deployer")
}

func TestWatchAllNamespacesSendsOnlyVisible(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newRBACCluster(t)
	admin := c.admin(t)
	dep, _ := c.token(t, admin, "deployer-a", "deployer", "team-a")
	w, err := dep.Watch(ctx, &berthv1.WatchRequest{AllNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Header(); err != nil {
		t.Fatal(err)
	}
	// team-b changes first: had it been sent, it would come first.
	for _, ns := range []string{"team-b", "team-a"} {
		if _, err := admin.Apply(ctx, shop(ns)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ev, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ns := ev.GetService().GetNamespace(); ns == "team-b" {
			t.Fatal("a deployer of team-a was sent a service of team-b")
		} else if ns == "team-a" {
			return
		}
	}
}

func TestTokensCannotMintMorePower(t *testing.T) {
	ctx := context.Background()
	c := newRBACCluster(t)
	admin := c.admin(t)
	dep, _ := c.token(t, admin, "deployer-a", "deployer", "team-a")
	if _, err := admin.CreateAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "admins-own", Role: "viewer"}); err != nil {
		t.Fatal(err)
	}

	_, err := dep.CreateAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "escalate", Role: "admin"})
	refused(t, "a deployer making an admin token", err, "token/deployer-a", "admin", "deployer")
	_, err = dep.CreateAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "sideways", Role: "viewer", Namespaces: []string{"team-b"}})
	refused(t, "a deployer of team-a making a token for team-b", err, "team-b")
	viewer, err := dep.CreateAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "ci-read", Role: "viewer"})
	if err != nil {
		t.Fatalf("a deployer making a viewer token: %v", err)
	}
	if got := viewer.GetToken(); got.GetRole() != "viewer" || strings.Join(got.GetNamespaces(), ",") != "team-a" || got.GetCreatedBy() != "token/deployer-a" {
		t.Errorf("made %+v, want a viewer of team-a made by token/deployer-a", got)
	}
	// The viewer token cannot make tokens at all.
	vcl := berthv1.NewClusterServiceClient(c.dial(t, c.addr, nil, nil, viewer.GetSecret()))
	_, err = vcl.CreateAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "more", Role: "viewer"})
	refused(t, "a viewer making a token", err)

	list, err := dep.ListAPITokens(ctx, &berthv1.ListAPITokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetTokens()) != 1 || list.GetTokens()[0].GetName() != "ci-read" {
		t.Errorf("a deployer lists %v, want only the token it made", list.GetTokens())
	}
	if _, err := dep.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{Token: "admins-own"}); status.Code(err) != codes.NotFound {
		t.Errorf("a deployer revoking the admin's token: got %v, want NotFound", err)
	}
	if _, err := dep.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{Token: "ci-read"}); err != nil {
		t.Errorf("a deployer revoking its own token: %v", err)
	}
}

func TestRevokingEndsOpenStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newRBACCluster(t)
	admin := c.admin(t)
	dep, _ := c.token(t, admin, "deployer-a", "deployer", "team-a")
	cert, key := c.user(t, admin, "vera", "viewer", "team-a")
	viewer := berthv1.NewClusterServiceClient(c.dial(t, c.addr, cert, key, ""))

	open := func(cl berthv1.ClusterServiceClient) berthv1.ClusterService_WatchClient {
		w, err := cl.Watch(ctx, &berthv1.WatchRequest{Namespace: "team-a"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Header(); err != nil {
			t.Fatal(err)
		}
		return w
	}
	tokenWatch, userWatch := open(dep), open(viewer)
	ended := func(what string, w berthv1.ClusterService_WatchClient, word string) {
		t.Helper()
		for {
			_, err := w.Recv()
			if err == nil {
				continue
			}
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), word) {
				t.Errorf("%s: stream ended with %v, want Unauthenticated saying %q", what, err, word)
			}
			return
		}
	}
	if _, err := admin.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{Token: "deployer-a"}); err != nil {
		t.Fatal(err)
	}
	ended("revoked token's watch", tokenWatch, "revoked")
	if _, err := admin.RemoveUser(ctx, &berthv1.RemoveUserRequest{Name: "vera"}); err != nil {
		t.Fatal(err)
	}
	ended("removed user's watch", userWatch, "user/vera")
	for c.streams.count() != 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("%d streams still registered", c.streams.count())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The revoked token no longer authenticates.
	if _, err := dep.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: "team-a"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked token: got %v, want Unauthenticated", err)
	}
}

func TestWhoAmI(t *testing.T) {
	ctx := context.Background()
	c := newRBACCluster(t)
	dep, _ := c.token(t, c.admin(t), "deployer-a", "deployer", "team-a")
	who, err := dep.WhoAmI(ctx, &berthv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	methods := "," + strings.Join(who.GetMethods(), ",") + ","
	if who.GetPrincipal() != "token/deployer-a" || who.GetRole() != "deployer" || strings.Join(who.GetNamespaces(), ",") != "team-a" ||
		!strings.Contains(methods, ",ScaleService,") || strings.Contains(methods, ",UpdateSettings,") {
		t.Errorf("WhoAmI = %v", who)
	}
}
