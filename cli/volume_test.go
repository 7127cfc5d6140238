package cli

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// volumeCluster answers the volume calls and DeleteApp, and records them.
type volumeCluster struct {
	berthv1.UnimplementedClusterServiceServer

	mu      sync.Mutex
	lists   []*berthv1.ListVolumesRequest
	removes []*berthv1.RemoveVolumeRequest
	deletes []*berthv1.DeleteAppRequest
}

var volumeSummaries = []*berthv1.VolumeSummary{
	{Volume: &berthv1.Volume{Namespace: "default", Name: "shop_data.1", Source: "shop_data", App: "shop", Service: "db", Slot: 1, NodeId: "n1",
		Labels: map[string]string{"backup": "daily"}}, NodeName: "node-1", SizeBytes: 3 << 20, Task: "shop/db.1"},
	{Volume: &berthv1.Volume{Namespace: "default", Name: "shop_data.2", Source: "shop_data", App: "shop", Service: "db", Slot: 2, NodeId: "n2"},
		NodeName: "node-2", SizeError: "node node-2 is down"},
	{Volume: &berthv1.Volume{Namespace: "default", Name: "shared.1", Source: "shared", Service: "db", Slot: 1, NodeId: "n1"}, NodeName: "node-1"},
}

func (f *volumeCluster) ListVolumes(_ context.Context, req *berthv1.ListVolumesRequest) (*berthv1.ListVolumesResponse, error) {
	f.mu.Lock()
	f.lists = append(f.lists, req)
	f.mu.Unlock()
	return &berthv1.ListVolumesResponse{Volumes: volumeSummaries}, nil
}

func (f *volumeCluster) GetVolume(_ context.Context, req *berthv1.GetVolumeRequest) (*berthv1.VolumeSummary, error) {
	for _, s := range volumeSummaries {
		if s.GetVolume().GetName() == req.Name {
			return s, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "volume %q not found in namespace %q", req.Name, req.Namespace)
}

func (f *volumeCluster) RemoveVolume(ctx context.Context, req *berthv1.RemoveVolumeRequest) (*berthv1.RemoveVolumeResponse, error) {
	f.mu.Lock()
	f.removes = append(f.removes, req)
	f.mu.Unlock()
	switch {
	case req.Name == "shop_data.1":
		return nil, status.Error(codes.FailedPrecondition, "volume shop_data.1 is used by task db.1 (t1) of service shop/db, which is meant to run")
	case req.Name == "shop_data.2" && !req.Force:
		return nil, status.Error(codes.FailedPrecondition, "volume shop_data.2: node node-2, which holds its data, cannot be reached")
	case req.Name == "shop_data.2":
		grpc.SetHeader(ctx, metadata.Pairs(warningHeader, "the data of volume shop_data.2 stays on node node-2"))
	}
	return &berthv1.RemoveVolumeResponse{}, nil
}

func (f *volumeCluster) DeleteApp(_ context.Context, req *berthv1.DeleteAppRequest) (*berthv1.DeleteAppResponse, error) {
	f.mu.Lock()
	f.deletes = append(f.deletes, req)
	f.mu.Unlock()
	resp := &berthv1.DeleteAppResponse{}
	if req.App == "shop" {
		resp.RemovedServices = []string{"web", "db"}
	}
	if req.Volumes {
		resp.RemovedVolumes = []string{"shop_data.1"}
	}
	return resp, nil
}

func TestVolumeCommands(t *testing.T) {
	f := &volumeCluster{}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "volume", "ls", "--app", "shop", "-n", "team-a")
	want := []string{
		"NAME          NODE     SIZE   TASK/SERVICE",
		"shop_data.1   node-1   3MiB   shop/db.1",
		"shop_data.2   node-2   ?      shop/db (idle)",
		"shared.1      node-1   0B     db (idle)",
	}
	if got := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("volume ls:\n%s\nwant:\n%s", r.stdout, strings.Join(want, "\n"))
	}
	if req := f.lists[0]; req.Namespace != "team-a" || req.App != "shop" {
		t.Errorf("ListVolumes request %v", req)
	}
	r = mustRun(t, cfg, "volume", "ls", "-o", "wide")
	if !strings.Contains(r.stdout, "NOTE") || !strings.Contains(r.stdout, "node node-2 is down") || !strings.Contains(r.stdout, "external") {
		t.Errorf("volume ls -o wide:\n%s", r.stdout)
	}
	r = mustRun(t, cfg, "volume", "ls", "-o", "json")
	var rows []volumeRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 3 || rows[0].SizeBytes != 3<<20 || rows[1].SizeError == "" {
		t.Errorf("volume ls -o json: %v\n%s", err, r.stdout)
	}

	r = mustRun(t, cfg, "volume", "inspect", "shop_data.2")
	for _, w := range []string{"Name:       shop_data.2", "Owner:      app shop", "Slot:       2", "Node:       node-2", "Size:       unknown: node node-2 is down", "Task:       -"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("volume inspect:\n%s\nwant %q", r.stdout, w)
		}
	}
	if r := mustRun(t, cfg, "volume", "inspect", "shop_data.1"); !strings.Contains(r.stdout, "Labels:     backup=daily") || !strings.Contains(r.stdout, "Task:       shop/db.1") {
		t.Errorf("volume inspect shop_data.1:\n%s", r.stdout)
	}
	if r := mustRun(t, cfg, "volume", "inspect", "shared.1", "-o", "json"); !strings.HasPrefix(r.stdout, "{") || strings.Contains(r.stdout, `"app"`) {
		t.Errorf("volume inspect -o json:\n%s", r.stdout)
	}
	if r := run(t, cfg, nil, "volume", "inspect", "nope"); r.code == 0 || !strings.Contains(r.stderr, `volume "nope" not found`) {
		t.Errorf("volume inspect nope: exit %d, %q", r.code, r.stderr)
	}

	if r := run(t, cfg, nil, "volume", "rm", "shop_data.1"); r.code == 0 || !strings.Contains(r.stderr, "used by task db.1 (t1) of service shop/db") {
		t.Errorf("volume rm of a used volume: exit %d, %q", r.code, r.stderr)
	}
	if r := run(t, cfg, nil, "volume", "rm", "shop_data.2"); r.code == 0 || !strings.Contains(r.stderr, "cannot be reached") {
		t.Errorf("volume rm without --force: exit %d, %q", r.code, r.stderr)
	}
	r = mustRun(t, cfg, "volume", "rm", "shop_data.2", "--force")
	if r.stdout != "volume shop_data.2 removed\n" || r.stderr != "warning: the data of volume shop_data.2 stays on node node-2\n" {
		t.Errorf("volume rm --force: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if last := f.removes[len(f.removes)-1]; !last.Force || last.Namespace != "default" {
		t.Errorf("RemoveVolume request %v", last)
	}
	if r := run(t, cfg, nil, "volume", "rm"); r.code != exitUsage {
		t.Errorf("volume rm without a name: exit %d, want %d", r.code, exitUsage)
	}
}

func TestDeleteWithVolumes(t *testing.T) {
	f := &volumeCluster{}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "delete", "shop", "--volumes")
	if r.stdout != "service web removed\nservice db removed\nvolume shop_data.1 removed\n" {
		t.Errorf("delete --volumes: %q", r.stdout)
	}
	mustRun(t, cfg, "delete", "shop")
	if len(f.deletes) != 2 || !f.deletes[0].Volumes || f.deletes[1].Volumes {
		t.Errorf("DeleteApp requests %v", f.deletes)
	}
	// An app deleted before, with volumes left.
	if r := mustRun(t, cfg, "delete", "gone", "--volumes"); r.stdout != "volume shop_data.1 removed\n" {
		t.Errorf("delete --volumes of a deleted app: %q", r.stdout)
	}
	if r := run(t, cfg, nil, "delete", "gone"); r.code == 0 || !strings.Contains(r.stderr, `no app "gone"`) {
		t.Errorf("delete of a missing app: exit %d, %q", r.code, r.stderr)
	}
}

func TestClusterSettingsHostAccess(t *testing.T) {
	f := newOpsCluster(false)
	f.settings = &berthv1.ClusterSettings{AllowedBindMounts: []string{"/srv/data"}}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "cluster", "settings")
	if r.stdout != "Strategy:             spread\nAuto-rebalance:       false\nMax replicas:         10000\nAllowed bind mounts:  /srv/data\n" {
		t.Errorf("settings: %q", r.stdout)
	}
	mustRun(t, cfg, "cluster", "settings", "--allow-bind-mount", "/var/log", "--allow-bind-mount", "/srv/data", "--allow-privileged")
	req := f.settingsReqs[0].Settings
	if !slices.Equal(req.AllowedBindMounts, []string{"/srv/data", "/var/log"}) || !req.AllowPrivileged || req.AllowHostNamespaces {
		t.Errorf("UpdateSettings request %v", req)
	}
	r = mustRun(t, cfg, "cluster", "settings", "--clear-bind-mounts", "--allow-bind-mount", "/opt", "--allow-host-namespaces", "--allow-privileged=false", "-o", "json")
	req = f.settingsReqs[1].Settings
	if !slices.Equal(req.AllowedBindMounts, []string{"/opt"}) || req.AllowPrivileged || !req.AllowHostNamespaces {
		t.Errorf("UpdateSettings request %v", req)
	}
	var out settingsOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !slices.Equal(out.AllowedBindMounts, []string{"/opt"}) || !out.AllowHostNamespaces || out.AllowPrivileged {
		t.Errorf("settings -o json: %v\n%s", err, r.stdout)
	}
	mustRun(t, cfg, "cluster", "settings", "--clear-bind-mounts")
	if req := f.settingsReqs[2].Settings; len(req.AllowedBindMounts) != 0 || !req.AllowHostNamespaces {
		t.Errorf("--clear-bind-mounts sent %v", req)
	}
	if r := run(t, cfg, nil, "cluster", "settings", "--allow-bind-mount", "srv"); r.code == 0 || !strings.Contains(r.stderr, `--allow-bind-mount "srv": give an absolute host path`) {
		t.Errorf("relative bind mount: exit %d, %q", r.code, r.stderr)
	}
	if len(f.settingsReqs) != 3 {
		t.Errorf("%d settings updates, want 3", len(f.settingsReqs))
	}
}
