package cli

import (
	"context"
	"strings"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// namespaceCluster answers the namespace calls from one stored record.
type namespaceCluster struct {
	berthv1.UnimplementedClusterServiceServer
	mu         sync.Mutex
	ns         *berthv1.Namespace
	usage      *berthv1.NamespaceUsage
	createReqs []*berthv1.CreateNamespaceRequest
	updateReqs []*berthv1.UpdateNamespaceRequest
	removed    []string
}

func (f *namespaceCluster) CreateNamespace(_ context.Context, req *berthv1.CreateNamespaceRequest) (*berthv1.Namespace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.createReqs = append(f.createReqs, req)
	return &berthv1.Namespace{Name: req.Name, Quota: req.Quota, Labels: req.Labels}, nil
}

func (f *namespaceCluster) UpdateNamespace(_ context.Context, req *berthv1.UpdateNamespaceRequest) (*berthv1.Namespace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updateReqs = append(f.updateReqs, req)
	return &berthv1.Namespace{Name: req.Name, Quota: req.Quota}, nil
}

func (f *namespaceCluster) GetNamespace(_ context.Context, req *berthv1.GetNamespaceRequest) (*berthv1.NamespaceSummary, error) {
	if req.Namespace != f.ns.Name {
		return nil, status.Errorf(codes.NotFound, "namespace %q not found", req.Namespace)
	}
	return &berthv1.NamespaceSummary{Namespace: f.ns, Usage: f.usage}, nil
}

func (f *namespaceCluster) ListNamespaces(context.Context, *berthv1.ListNamespacesRequest) (*berthv1.ListNamespacesResponse, error) {
	return &berthv1.ListNamespacesResponse{Namespaces: []*berthv1.NamespaceSummary{
		{Namespace: &berthv1.Namespace{Name: "default"}, Usage: &berthv1.NamespaceUsage{Tasks: 2, MemoryBytes: 1 << 20}},
		{Namespace: f.ns, Usage: f.usage},
	}}, nil
}

func (f *namespaceCluster) RemoveNamespace(_ context.Context, req *berthv1.RemoveNamespaceRequest) (*berthv1.RemoveNamespaceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, req.Name)
	return &berthv1.RemoveNamespaceResponse{}, nil
}

func TestNamespaceCommands(t *testing.T) {
	f := &namespaceCluster{
		ns:    &berthv1.Namespace{Name: "team-a", Quota: &berthv1.NamespaceQuota{CpuMillis: 2000, MemoryBytes: 4 << 30, Tasks: 50}},
		usage: &berthv1.NamespaceUsage{CpuMillis: 1500, MemoryBytes: 3 << 30, Tasks: 6, Volumes: 2, Apps: 1, Services: 2},
	}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "namespace", "create", "team-b", "--cpu", "0.5", "--memory", "512m", "--tasks", "5", "--label", "team=b")
	if r.stdout != "namespace team-b created (quota: tasks 5, cpu 0.5, memory 512MiB)\n" {
		t.Errorf("create: %q", r.stdout)
	}
	if q := f.createReqs[0].Quota; q.CpuMillis != 500 || q.MemoryBytes != 512<<20 || q.Tasks != 5 || q.Volumes != 0 || f.createReqs[0].Labels["team"] != "b" {
		t.Errorf("create request %v", f.createReqs[0])
	}

	// Flags not given keep their value.
	mustRun(t, cfg, "ns", "update", "team-a", "--memory", "8GiB", "--volumes", "10")
	if q := f.updateReqs[0].Quota; q.CpuMillis != 2000 || q.MemoryBytes != 8<<30 || q.Tasks != 50 || q.Volumes != 10 {
		t.Errorf("update request %v", q)
	}

	r = mustRun(t, cfg, "namespace", "ls")
	want := "NAME      TASKS   CPU     MEMORY      VOLUMES\n" +
		"default   2/-     0/-     1MiB/-      0/-\n" +
		"team-a    6/50    1.5/2   3GiB/4GiB   2/-\n"
	if r.stdout != want {
		t.Errorf("ls:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = mustRun(t, cfg, "namespace", "describe", "team-a")
	for _, line := range []string{"Name:      team-a", "Apps:      1", "Services:  2",
		"RESOURCE   USED   QUOTA   FREE", "tasks      6      50      44", "cpu        1.5    2       0.5", "memory     3GiB   4GiB    1GiB", "volumes    2      none    -"} {
		if !strings.Contains(r.stdout, line+"\n") {
			t.Errorf("describe does not show %q:\n%s", line, r.stdout)
		}
	}

	mustRun(t, cfg, "namespace", "rm", "team-a")
	if len(f.removed) != 1 || f.removed[0] != "team-a" {
		t.Errorf("removed %v", f.removed)
	}

	for _, args := range [][]string{
		{"namespace", "create", "x", "--memory", "lots"},
		{"namespace", "create", "x", "--cpu", "-1"},
		{"namespace", "update", "team-a"},
		{"namespace", "create"},
	} {
		if r := run(t, cfg, nil, args...); r.code != 2 {
			t.Errorf("berth %s: exit %d, want 2; stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if len(f.createReqs) != 1 || len(f.updateReqs) != 1 {
		t.Errorf("bad flags reached the server")
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "512m": 512 << 20, "4g": 4 << 30, "4GiB": 4 << 30, "1.5g": 3 << 29, "2k": 2048, "1tb": 1 << 40} {
		if got, err := parseMemory(in); err != nil || got != want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "g", "-1g", "lots", "1e30g"} {
		if _, err := parseMemory(in); err == nil {
			t.Errorf("parseMemory(%q) accepted", in)
		}
	}
}
