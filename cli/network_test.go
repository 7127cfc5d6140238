package cli

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// networkCluster answers the network calls and records them.
type networkCluster struct {
	berthv1.UnimplementedClusterServiceServer

	mu      sync.Mutex
	creates []*berthv1.CreateNetworkRequest
	removes []*berthv1.RemoveNetworkRequest
}

var networkSummaries = []*berthv1.NetworkSummary{
	{Network: &berthv1.Network{Namespace: "default", Name: "shared", Subnet: "10.128.0.0/24", Internal: true, Labels: map[string]string{"team": "core"}},
		Services: []string{"shop/web", "blog/web"}, Tasks: 3},
	{Network: &berthv1.Network{Namespace: "default", Name: "shop_default", App: "shop", Subnet: "10.128.1.0/24"}},
}

func (f *networkCluster) CreateNetwork(_ context.Context, req *berthv1.CreateNetworkRequest) (*berthv1.Network, error) {
	f.mu.Lock()
	f.creates = append(f.creates, req)
	f.mu.Unlock()
	subnet := req.Subnet
	if subnet == "" {
		subnet = "10.128.2.0/24"
	}
	return &berthv1.Network{Namespace: req.Namespace, Name: req.Name, Subnet: subnet, Internal: req.Internal, Labels: req.Labels}, nil
}

func (f *networkCluster) ListNetworks(context.Context, *berthv1.ListNetworksRequest) (*berthv1.ListNetworksResponse, error) {
	return &berthv1.ListNetworksResponse{Networks: networkSummaries}, nil
}

func (f *networkCluster) GetNetwork(_ context.Context, req *berthv1.GetNetworkRequest) (*berthv1.NetworkSummary, error) {
	for _, s := range networkSummaries {
		if s.GetNetwork().GetName() == req.Name {
			return s, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "network %q not found", req.Name)
}

func (f *networkCluster) RemoveNetwork(_ context.Context, req *berthv1.RemoveNetworkRequest) (*berthv1.RemoveNetworkResponse, error) {
	f.mu.Lock()
	f.removes = append(f.removes, req)
	f.mu.Unlock()
	if req.Name == "shared" {
		return nil, status.Error(codes.FailedPrecondition, `network "shared" is used by service shop/web`)
	}
	return &berthv1.RemoveNetworkResponse{}, nil
}

func TestNetworkCommands(t *testing.T) {
	f := &networkCluster{}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "network", "create", "backend", "--subnet", "10.30.0.0/24", "--internal", "--label", "team=core", "--label", "tier=db", "-n", "team-a")
	if r.stdout != "network backend created (subnet 10.30.0.0/24)\n" {
		t.Errorf("network create: %q", r.stdout)
	}
	if len(f.creates) != 1 {
		t.Fatalf("CreateNetwork called %d times", len(f.creates))
	}
	if c := f.creates[0]; c.Namespace != "team-a" || c.Name != "backend" || c.Subnet != "10.30.0.0/24" || !c.Internal || c.Labels["team"] != "core" || c.Labels["tier"] != "db" {
		t.Errorf("network create sent %v", c)
	}
	if r := run(t, cfg, nil, "network", "create", "x", "--label", "novalue"); r.code == 0 || !strings.Contains(r.stderr, "write KEY=VALUE") {
		t.Errorf("network create --label novalue: exit %d, %q", r.code, r.stderr)
	}

	r = mustRun(t, cfg, "network", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "shared") || !strings.Contains(lines[1], "shop/web,blog/web") || !strings.HasSuffix(lines[1], "3") ||
		!strings.Contains(lines[2], "app shop") || !strings.Contains(lines[2], " - ") {
		t.Errorf("network ls:\n%s", r.stdout)
	}
	if r := mustRun(t, cfg, "network", "ls", "-o", "json"); !strings.Contains(r.stdout, `"subnet": "10.128.0.0/24"`) || !strings.Contains(r.stdout, `"services": []`) {
		t.Errorf("network ls -o json:\n%s", r.stdout)
	}

	r = mustRun(t, cfg, "network", "inspect", "shared")
	for _, want := range []string{"Subnet:     10.128.0.0/24", "Internal:   yes", "Owner:      shared", "Labels:     team=core", "Tasks:      3", "  shop/web\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("network inspect:\n%s\nwant %q", r.stdout, want)
		}
	}
	if r := mustRun(t, cfg, "network", "inspect", "shop_default", "-o", "json"); !strings.HasPrefix(r.stdout, "{") || !strings.Contains(r.stdout, `"app": "shop"`) {
		t.Errorf("network inspect -o json:\n%s", r.stdout)
	}
	if r := run(t, cfg, nil, "network", "inspect", "nope"); r.code == 0 || !strings.Contains(r.stderr, `network "nope" not found`) {
		t.Errorf("network inspect nope: exit %d, %q", r.code, r.stderr)
	}

	if r := mustRun(t, cfg, "network", "rm", "old"); r.stdout != "network old removed\n" {
		t.Errorf("network rm: %q", r.stdout)
	}
	if r := run(t, cfg, nil, "network", "rm", "shared"); r.code == 0 || !strings.Contains(r.stderr, "used by service shop/web") {
		t.Errorf("network rm shared: exit %d, %q", r.code, r.stderr)
	}
}

const networkCompose = `
name: shop
services:
  web:
    image: shop/web:1
    networks: [front]
  db:
    image: shop/db:1
networks:
  front: {}
`

// appNetworkCluster is fakeCluster with the app's stored networks.
type appNetworkCluster struct {
	*fakeCluster
}

func (f appNetworkCluster) ListNetworks(context.Context, *berthv1.ListNetworksRequest) (*berthv1.ListNetworksResponse, error) {
	return &berthv1.ListNetworksResponse{Networks: []*berthv1.NetworkSummary{
		{Network: &berthv1.Network{Name: "shop_default", App: "shop"}},
		{Network: &berthv1.Network{Name: "shop_old", App: "shop"}},
		{Network: &berthv1.Network{Name: "shared"}},
	}}, nil
}

func TestApplyPassesAndPrintsNetworks(t *testing.T) {
	f := &fakeCluster{applyResp: &berthv1.ApplyResponse{
		CreatedNetworks: []string{"shop_front"},
		Changes:         []*berthv1.ServiceChange{{Service: "web", Action: berthv1.ChangeAction_CHANGE_ACTION_CREATE}},
		RemovedNetworks: []string{"shop_old"},
	}}
	cfg := serve(t, appNetworkCluster{f})
	file := writeCompose(t, networkCompose)
	r := mustRun(t, cfg, "apply", "-f", file)
	if want := "network shop_front created\nservice web created\nnetwork shop_old removed\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	req := f.applyReqs[0]
	var names []string
	for _, n := range req.Networks {
		names = append(names, n.GetName())
	}
	if strings.Join(names, ",") != "shop_default,shop_front" {
		t.Errorf("Apply networks = %v, want shop_default and shop_front", names)
	}
	if nets := req.Services[1].GetSpec().GetNetworks(); req.Services[1].Name != "web" || len(nets) != 1 || nets[0].Network != "shop_front" {
		t.Errorf("web's networks = %v", nets)
	}

	r = mustRun(t, cfg, "apply", "-f", file, "--dry-run", "--diff")
	if !strings.Contains(r.stdout, "+ network shop_front\n- network shop_old\n") || !strings.Contains(r.stdout, "network shop_front would be created\n") {
		t.Errorf("apply --dry-run --diff:\n%s", r.stdout)
	}
}
