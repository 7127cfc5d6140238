package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// onNetworks puts s on the networks named.
func onNetworks(s *berthv1.Service, networks ...*berthv1.ServiceNetwork) *berthv1.Service {
	s.Spec.Networks = networks
	return s
}

func joins(name string) *berthv1.ServiceNetwork { return &berthv1.ServiceNetwork{Network: name} }

// wantStatus fails unless err has code and its message holds every part.
func wantStatus(t *testing.T, what string, err error, code codes.Code, parts ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: got %v, want %v", what, err, code)
	}
	for _, p := range parts {
		if !strings.Contains(status.Convert(err).Message(), p) {
			t.Errorf("%s: %q does not say %q", what, status.Convert(err).Message(), p)
		}
	}
}

// storedNetworks returns the namespace's networks by name, with subnets.
func storedNetworks(s *Server, ns string) map[string]string {
	out := map[string]string{}
	for _, n := range s.cfg.Cache.Networks(store.NamespaceNetworksPrefix(ns)) {
		out[n.Name] = n.Subnet
	}
	return out
}

// claimHolder is who holds the claim on subnet ("" for nobody).
func claimHolder(t *testing.T, s *Server, subnet string) string {
	t.Helper()
	holder, err := s.cfg.Store.ClaimHolder(context.Background(), store.NetworkSubnetKey(subnet))
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return holder
}

func TestApplyNetworks(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	back := &berthv1.AppNetwork{Name: "shop_back", Key: "back", Subnet: "10.20.0.0/24", Internal: true}
	front := &berthv1.AppNetwork{Name: "shop_front", Key: "front", Labels: map[string]string{"tier": "front"}}
	services := func() []*berthv1.Service {
		return []*berthv1.Service{
			svc("web", "busybox", 1), // no networks: joins shop_default
			onNetworks(svc("api", "busybox", 1), joins("shop_front"), joins("shop_back")),
			onNetworks(svc("db", "busybox", 1), &berthv1.ServiceNetwork{Network: "shop_back", Aliases: []string{"store"}, Ipv4Address: "10.20.0.9"}),
		}
	}
	req := func(networks ...*berthv1.AppNetwork) *berthv1.ApplyRequest {
		return &berthv1.ApplyRequest{App: "shop", Services: services(), Networks: networks}
	}

	// A dry run says what it would make and writes nothing.
	before := etcdRevision(t, s)
	dry := req(back, front)
	dry.DryRun = true
	resp, err := s.Apply(ctx, dry)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shop_back", "shop_front", "shop_default"}; !slices.Equal(resp.CreatedNetworks, want) {
		t.Errorf("dry run created %v, want %v", resp.CreatedNetworks, want)
	}
	if etcdRevision(t, s) != before {
		t.Errorf("a dry run wrote")
	}

	resp, err = s.Apply(ctx, req(back, front))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"shop_back", "shop_front", "shop_default"}; !slices.Equal(resp.CreatedNetworks, want) {
		t.Errorf("created %v, want %v", resp.CreatedNetworks, want)
	}
	want := map[string]string{"shop_back": "10.20.0.0/24", "shop_front": "10.128.0.0/24", "shop_default": "10.128.1.0/24"}
	if got := storedNetworks(s, DefaultNamespace); !mapsEqual(got, want) {
		t.Errorf("networks = %v, want %v", got, want)
	}
	for name, subnet := range want {
		if h := claimHolder(t, s, subnet); h != store.NetworkKey(DefaultNamespace, name) {
			t.Errorf("claim on %s held by %q, want %s", subnet, h, name)
		}
	}
	n, _ := s.cfg.Cache.Network(DefaultNamespace, "shop_back")
	if n.App != "shop" || !n.Internal {
		t.Errorf("shop_back = %v, want app shop, internal", n)
	}
	web, _ := s.cfg.Cache.Service(store.ServiceKey(DefaultNamespace, "shop", "web"))
	if nets := web.GetSpec().GetNetworks(); len(nets) != 1 || nets[0].GetNetwork() != "shop_default" {
		t.Errorf("web's networks = %v, want shop_default", nets)
	}

	// The same again writes nothing.
	before = etcdRevision(t, s)
	if resp, err = s.Apply(ctx, req(back, front)); err != nil {
		t.Fatal(err)
	}
	if len(resp.CreatedNetworks)+len(resp.RemovedNetworks) != 0 || etcdRevision(t, s) != before {
		t.Errorf("unchanged apply: %v, wrote %v", resp, etcdRevision(t, s) != before)
	}

	// A subnet or internal flag cannot change in place.
	moved := &berthv1.AppNetwork{Name: "shop_back", Key: "back", Subnet: "10.21.0.0/24", Internal: true}
	movedReq := req(moved, front)
	movedReq.Services[2].Spec.Networks[0].Ipv4Address = ""
	_, err = s.Apply(ctx, movedReq)
	wantStatus(t, "moved subnet", err, codes.InvalidArgument, "networks.back.ipam.config[0].subnet", "has subnet 10.20.0.0/24", "berth delete app shop")
	opened := &berthv1.AppNetwork{Name: "shop_back", Key: "back", Subnet: "10.20.0.0/24"}
	_, err = s.Apply(ctx, req(opened, front))
	wantStatus(t, "internal changed", err, codes.InvalidArgument, "networks.back.internal", "berth delete app shop")

	// Labels change in place.
	relabeled := &berthv1.AppNetwork{Name: "shop_front", Key: "front", Labels: map[string]string{"tier": "edge"}}
	if _, err := s.Apply(ctx, req(back, relabeled)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.cfg.Cache.Network(DefaultNamespace, "shop_front"); n.GetLabels()["tier"] != "edge" || n.GetSubnet() != "10.128.0.0/24" {
		t.Errorf("relabeled shop_front = %v", n)
	}

	// A network the file drops goes, with its claim.
	only := &berthv1.ApplyRequest{App: "shop", Networks: []*berthv1.AppNetwork{back}, Services: []*berthv1.Service{
		svc("web", "busybox", 1),
		onNetworks(svc("api", "busybox", 1), joins("shop_back")),
	}}
	if resp, err = s.Apply(ctx, only); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.RemovedNetworks, []string{"shop_front"}) || len(resp.CreatedNetworks) != 0 {
		t.Errorf("removed %v created %v, want shop_front removed", resp.RemovedNetworks, resp.CreatedNetworks)
	}
	if _, ok := s.cfg.Cache.Network(DefaultNamespace, "shop_front"); ok || claimHolder(t, s, "10.128.0.0/24") != "" {
		t.Errorf("shop_front or its claim is still there")
	}

	// An app network cannot be removed alone; deleting the app removes it.
	_, err = s.RemoveNetwork(ctx, &berthv1.RemoveNetworkRequest{Name: "shop_back"})
	wantStatus(t, "remove an app's network", err, codes.FailedPrecondition, `belongs to app "shop"`, "berth delete app shop")
	if _, err := s.DeleteApp(ctx, &berthv1.DeleteAppRequest{App: "shop"}); err != nil {
		t.Fatal(err)
	}
	if got := storedNetworks(s, DefaultNamespace); len(got) != 0 {
		t.Errorf("networks after DeleteApp = %v", got)
	}
	if claimHolder(t, s, "10.20.0.0/24") != "" || claimHolder(t, s, "10.128.1.0/24") != "" {
		t.Errorf("claims left after DeleteApp")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestApplyNetworkConflicts(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t)
	s := New(Config{
		Store: st, Cache: storetest.NewCache(t, st), Log: slog.New(slog.DiscardHandler),
		ContainerRange: netip.MustParsePrefix("10.210.0.0/16"),
	})
	first := &berthv1.ApplyRequest{App: "one", Networks: []*berthv1.AppNetwork{{Name: "one_back", Key: "back", Subnet: "10.20.0.0/16"}},
		Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), joins("one_back"))}}
	if _, err := s.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *berthv1.ApplyRequest
		want []string
	}{
		{name: "overlapping another app's subnet", req: &berthv1.ApplyRequest{App: "two",
			Networks: []*berthv1.AppNetwork{{Name: "two_back", Key: "back", Subnet: "10.20.5.0/24"}},
			Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), joins("two_back"))}},
			want: []string{"networks.back.ipam.config[0].subnet", "10.20.5.0/24 overlaps 10.20.0.0/16 of network default/one_back"}},
		{name: "overlapping the container range", req: &berthv1.ApplyRequest{App: "two",
			Networks: []*berthv1.AppNetwork{{Name: "two_back", Key: "back", Subnet: "10.210.3.0/24"}},
			Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), joins("two_back"))}},
			want: []string{"overlaps the cluster's container range 10.210.0.0/16"}},
		{name: "another app's network by name", req: &berthv1.ApplyRequest{App: "two",
			Networks: []*berthv1.AppNetwork{{Name: "one_back", Key: "back"}},
			Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), joins("one_back"))}},
			want: []string{`network "one_back" already exists (of app "one"); join it with external: true`}},
		{name: "missing external network", req: &berthv1.ApplyRequest{App: "two",
			Networks: []*berthv1.AppNetwork{{Name: "shared", Key: "shared", External: true}},
			Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), joins("shared"))}},
			want: []string{"networks.shared.external", `network "shared" does not exist; create it with berth network create shared`}},
		{name: "fixed address outside a given subnet", req: &berthv1.ApplyRequest{App: "two",
			Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), &berthv1.ServiceNetwork{Network: "two_default", Ipv4Address: "10.99.0.5"})}},
			want: []string{`service "web": networks.two_default.ipv4_address: 10.99.0.5 is outside network two_default's subnet 10.128.0.0/24`}},
		{name: "undefined network", req: &berthv1.ApplyRequest{App: "two",
			Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), joins("elsewhere"))}},
			want: []string{`network "elsewhere" is not defined`}},
	}
	for _, tt := range tests {
		before := etcdRevision(t, s)
		_, err := s.Apply(ctx, tt.req)
		wantStatus(t, tt.name, err, codes.InvalidArgument, tt.want...)
		if etcdRevision(t, s) != before {
			t.Errorf("%s: a refused apply wrote", tt.name)
		}
	}
}

func TestApplyIngressPorts(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	published := func(name string, port uint32, mode berthv1.PublishMode) *berthv1.Service {
		sv := svc(name, "busybox", 1)
		sv.Spec.Ports = []*berthv1.PortSpec{{Target: 80, Published: port, Mode: mode}}
		return sv
	}
	const (
		ingress = berthv1.PublishMode_PUBLISH_MODE_UNSPECIFIED // read as ingress
		host    = berthv1.PublishMode_PUBLISH_MODE_HOST
	)
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "one", Services: []*berthv1.Service{published("web", 8080, ingress), published("admin", 9090, host)}}); err != nil {
		t.Fatal(err)
	}
	// The app itself may apply again with the same ports.
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "one", Services: []*berthv1.Service{published("web", 8080, ingress), published("admin", 9090, host)}}); err != nil {
		t.Fatalf("re-apply: %v", err)
	}
	tests := []struct {
		name     string
		ns       string
		services []*berthv1.Service
		want     string // "" for no error
	}{
		{name: "ingress taken", services: []*berthv1.Service{published("site", 8080, ingress)},
			want: `service "site": ports[0].published: tcp port 8080 is already published in ingress mode, on every node, by service one/web`},
		{name: "ingress taken, other namespace", ns: "team", services: []*berthv1.Service{published("site", 8080, ingress)},
			want: "by service one/web of namespace default"},
		{name: "host port on an ingress port", services: []*berthv1.Service{published("site", 8080, host)},
			want: "already published in ingress mode"},
		{name: "ingress port on a host port", services: []*berthv1.Service{published("site", 9090, ingress)},
			want: "already published in host mode by service one/admin"},
		{name: "two services of one app", services: []*berthv1.Service{published("a", 7070, ingress), published("b", 7070, ingress)},
			want: `service "b": ports[0].published: tcp port 7070 is already published in ingress mode, on every node, by service two/a`},
		{name: "host ports may meet", services: []*berthv1.Service{published("site", 9090, host)}},
		{name: "a host range over an ingress port", services: []*berthv1.Service{func() *berthv1.Service {
			sv := published("site", 8070, host)
			sv.Spec.Ports[0].PublishedEnd = 8090
			return sv
		}()}, want: `service "site": ports[0].published: tcp port 8080 is already published in ingress mode, on every node, by service one/web`},
		{name: "udp is another port", services: []*berthv1.Service{func() *berthv1.Service {
			sv := published("site", 8080, ingress)
			sv.Spec.Ports[0].Protocol = "udp"
			return sv
		}()}},
	}
	for _, tt := range tests {
		_, err := s.Apply(ctx, &berthv1.ApplyRequest{Namespace: tt.ns, App: "two", Services: tt.services, DryRun: true})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		wantStatus(t, tt.name, err, codes.InvalidArgument, tt.want)
	}
}

func TestNetworkAPI(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	shared, err := s.CreateNetwork(ctx, &berthv1.CreateNetworkRequest{Name: "shared", Internal: true, Labels: map[string]string{"team": "core"}})
	if err != nil {
		t.Fatal(err)
	}
	if shared.Subnet != "10.128.0.0/24" || shared.App != "" || !shared.Internal || shared.GetMeta().GetId() == "" {
		t.Errorf("CreateNetwork() = %v", shared)
	}
	if _, err := s.CreateNetwork(ctx, &berthv1.CreateNetworkRequest{Name: "fixed", Subnet: "10.30.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateNetwork(ctx, &berthv1.CreateNetworkRequest{Name: "shared"})
	wantStatus(t, "duplicate", err, codes.AlreadyExists, `network "shared" already exists`)
	_, err = s.CreateNetwork(ctx, &berthv1.CreateNetworkRequest{Name: "Bad Name", Subnet: "10.40.0.1/24"})
	wantStatus(t, "invalid", err, codes.InvalidArgument, `invalid network name "Bad Name"`, "host bits set")
	_, err = s.CreateNetwork(ctx, &berthv1.CreateNetworkRequest{Name: "over", Subnet: "10.30.0.128/25"})
	wantStatus(t, "overlap", err, codes.InvalidArgument, "overlaps 10.30.0.0/24 of network default/fixed")

	// An app joins the shared network as external.
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop",
		Networks: []*berthv1.AppNetwork{{Name: "shared", Key: "shared", External: true}},
		Services: []*berthv1.Service{onNetworks(svc("web", "busybox", 1), joins("shared")), svc("db", "busybox", 1)}}); err != nil {
		t.Fatal(err)
	}
	web, _ := s.cfg.Cache.Service(store.ServiceKey(DefaultNamespace, "shop", "web"))
	// Two tasks hold an address on it, one has ended.
	var txn store.Txn
	for i, state := range []berthv1.TaskState{berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_PENDING, berthv1.TaskState_TASK_STATE_FAILED} {
		tk := &berthv1.Task{
			Meta: &berthv1.Meta{Id: fmt.Sprintf("t%d", i)}, Namespace: DefaultNamespace, App: "shop", Service: "web", ServiceId: web.GetMeta().GetId(),
			Status:   &berthv1.TaskStatus{State: state},
			Networks: []*berthv1.TaskNetwork{{NetworkId: shared.GetMeta().GetId(), Network: "shared", Address: fmt.Sprintf("10.128.0.%d/24", i+2)}},
		}
		txn.Create(store.TaskKey(tk.Namespace, tk.App, tk.Service, tk.Meta.Id), tk)
	}
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	got, err := s.GetNetwork(ctx, &berthv1.GetNetworkRequest{Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Services, []string{"shop/web"}) || got.Tasks != 2 || got.GetNetwork().GetLabels()["team"] != "core" {
		t.Errorf("GetNetwork() = %v, want service shop/web with 2 tasks", got)
	}
	_, err = s.GetNetwork(ctx, &berthv1.GetNetworkRequest{Name: "nope"})
	wantStatus(t, "get missing", err, codes.NotFound, "berth network ls")

	list, err := s.ListNetworks(ctx, &berthv1.ListNetworksRequest{Namespace: DefaultNamespace})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range list.Networks {
		names = append(names, n.GetNetwork().GetName())
	}
	if want := []string{"fixed", "shared", "shop_default"}; !slices.Equal(names, want) {
		t.Errorf("ListNetworks() = %v, want %v", names, want)
	}
	if other, _ := s.ListNetworks(ctx, &berthv1.ListNetworksRequest{Namespace: "elsewhere"}); len(other.Networks) != 0 {
		t.Errorf("ListNetworks(elsewhere) = %v", other.Networks)
	}

	_, err = s.RemoveNetwork(ctx, &berthv1.RemoveNetworkRequest{Name: "shared"})
	wantStatus(t, "remove in use", err, codes.FailedPrecondition, "used by service shop/web")
	// Deleting the app leaves the shared network, which it only joined.
	if _, err := s.DeleteApp(ctx, &berthv1.DeleteAppRequest{App: "shop"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.cfg.Cache.Network(DefaultNamespace, "shared"); !ok {
		t.Fatal("DeleteApp removed a network the app only joined")
	}
	if _, err := s.RemoveNetwork(ctx, &berthv1.RemoveNetworkRequest{Name: "shared"}); err != nil {
		t.Fatal(err)
	}
	if claimHolder(t, s, shared.Subnet) != "" {
		t.Errorf("the claim on %s outlived its network", shared.Subnet)
	}
	_, err = s.RemoveNetwork(ctx, &berthv1.RemoveNetworkRequest{Name: "shared"})
	wantStatus(t, "remove again", err, codes.NotFound)
}

// TestConcurrentAppliesNeverShareASubnet applies apps at once, each
// making a network from the range: the claims make the losers of a race
// plan again, so every network gets its own subnet.
func TestConcurrentAppliesNeverShareASubnet(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	const apps = 4
	var wg sync.WaitGroup
	errs := make([]error, apps)
	for i := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Apply(ctx, &berthv1.ApplyRequest{App: fmt.Sprintf("app%d", i), Services: []*berthv1.Service{svc("web", "busybox", 1)}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	seen := map[string]string{}
	for name, subnet := range storedNetworks(s, DefaultNamespace) {
		if other, ok := seen[subnet]; ok {
			t.Errorf("%s and %s share subnet %s", name, other, subnet)
		}
		seen[subnet] = name
	}
	if len(seen) != apps {
		t.Errorf("networks = %v, want %d", seen, apps)
	}
}
