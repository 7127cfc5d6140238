package cli

import (
	"context"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// removalCluster answers image removal and disk usage with canned
// answers and records the requests.
type removalCluster struct {
	fakeCluster
	removal *berthv1.RemoveImagesResponse
	usage   *berthv1.DiskUsageResponse

	rmReqs    []*berthv1.RemoveImageRequest
	pruneReqs []*berthv1.PruneImagesRequest
}

func (f *removalCluster) RemoveImage(_ context.Context, req *berthv1.RemoveImageRequest) (*berthv1.RemoveImagesResponse, error) {
	f.record(func() { f.rmReqs = append(f.rmReqs, req) })
	return f.removal, nil
}

func (f *removalCluster) PruneImages(_ context.Context, req *berthv1.PruneImagesRequest) (*berthv1.RemoveImagesResponse, error) {
	f.record(func() { f.pruneReqs = append(f.pruneReqs, req) })
	return f.removal, nil
}

func (f *removalCluster) DiskUsage(context.Context, *berthv1.DiskUsageRequest) (*berthv1.DiskUsageResponse, error) {
	return f.usage, nil
}

func TestImageRm(t *testing.T) {
	f := &removalCluster{fakeCluster: fakeCluster{nodes: testNodes()}}
	cfg := serve(t, f)

	f.removal = &berthv1.RemoveImagesResponse{Nodes: []*berthv1.NodeImageRemoval{
		{NodeName: "node-1", Removed: []*berthv1.RemovedImage{{Name: "docker.io/library/old:1", Size: 3 << 20}}, FreedBytes: 3 << 20},
		{NodeName: "node-2", Missing: []string{"docker.io/library/old:1"}},
	}}
	r := mustRun(t, cfg, "image", "rm", "old:1", "--node", "node-1")
	if r.stdout != "node-1: removed docker.io/library/old:1 (3MiB)\nTotal reclaimed space: 3MiB\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if req := f.rmReqs[0]; req.NodeId != "n1aaaaaaaaaaaaaaaa" || req.Force || len(req.Images) != 1 || req.Images[0] != "old:1" {
		t.Errorf("request = %v", req)
	}

	// Refused: the task is named and the exit is 1.
	f.removal = &berthv1.RemoveImagesResponse{Nodes: []*berthv1.NodeImageRemoval{
		{NodeName: "node-1", Kept: []*berthv1.KeptImage{{Image: "docker.io/library/web:1", Tasks: []string{"shop/web.1"}, Running: true}}},
	}}
	r = run(t, cfg, nil, "image", "rm", "web:1", "--force")
	if r.code != exitFailure || !strings.Contains(r.stderr, "berth: node-1: kept docker.io/library/web:1: in use by 1 task shop/web.1, which runs: kept even with --force") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if !f.rmReqs[1].Force {
		t.Errorf("--force not sent: %v", f.rmReqs[1])
	}

	// On no node at all.
	f.removal = &berthv1.RemoveImagesResponse{Nodes: []*berthv1.NodeImageRemoval{
		{NodeName: "node-1", Missing: []string{"docker.io/library/nope:1"}},
		{NodeName: "node-2", Missing: []string{"docker.io/library/nope:1"}},
	}}
	r = run(t, cfg, nil, "image", "rm", "nope:1")
	if r.code != exitFailure || !strings.Contains(r.stderr, "berth: no node holds docker.io/library/nope:1") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}

	// Prune.
	f.removal = &berthv1.RemoveImagesResponse{Nodes: []*berthv1.NodeImageRemoval{
		{NodeName: "node-1", Removed: []*berthv1.RemovedImage{{Name: "docker.io/library/a:1", Size: 1 << 20}, {Name: "docker.io/library/b:1", Size: 2 << 20}}},
		{NodeName: "node-2"},
	}}
	r = mustRun(t, cfg, "image", "prune", "--all")
	if !strings.Contains(r.stdout, "node-1: removed docker.io/library/b:1 (2MiB)") || !strings.HasSuffix(r.stdout, "Total reclaimed space: 3MiB\n") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if req := f.pruneReqs[0]; !req.All || req.NodeId != "" {
		t.Errorf("prune request = %v", req)
	}
	if r := run(t, cfg, nil, "image", "rm"); r.code != exitUsage || !strings.Contains(r.stderr, "usage: berth image rm IMAGE...") {
		t.Errorf("image rm without an image: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestSystemDf(t *testing.T) {
	f := &removalCluster{fakeCluster: fakeCluster{nodes: testNodes()}, usage: &berthv1.DiskUsageResponse{Nodes: []*berthv1.NodeDiskUsage{
		{NodeName: "node-1", Images: 2, ImagesBytes: 4 << 20, ImagesReclaimableBytes: 1 << 20, Containers: 1, ContainersBytes: 8 << 10, Volumes: 1, VolumesBytes: 2 << 20,
			BuildCacheRunning: true, BuildCacheRecords: 3, BuildCacheBytes: 5 << 20, BuildCacheReclaimableBytes: 5 << 20},
		{NodeName: "node-2", Images: 1, ImagesBytes: 1 << 20},
		{NodeName: "node-3", Error: "unreachable"},
	}}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "system", "df")
	want := "NODE     IMAGES   IMAGES SIZE   RECLAIMABLE   CONTAINERS   CONTAINERS SIZE   VOLUMES   VOLUMES SIZE   BUILD CACHE\n" +
		"node-1   2        4MiB          1MiB          1            8KiB              1         2MiB           5MiB (3 records, 5MiB reclaimable)\n" +
		"node-2   1        1MiB          0B            0            0B                0         0B             not running\n" +
		"node-3   -        -             -             -            -                 -         -              unreachable\n" +
		"TOTAL    3        5MiB          1MiB          1            8KiB              1         2MiB           5MiB\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "warning: node node-3: unreachable") {
		t.Errorf("stderr = %q", r.stderr)
	}
	r = mustRun(t, cfg, "system", "df", "--format", "{{.node}} {{.images}} {{.buildCache}}")
	if r.stdout != "node-1 2 running\nnode-2 1 not running\nnode-3 0 not running\n" {
		t.Errorf("--format stdout = %q", r.stdout)
	}
}
