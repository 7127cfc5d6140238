package agent

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/fake"
	"github.com/berthproject/berth/agent/session"
	"github.com/berthproject/berth/agent/volume"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestNodeServiceRemoveImagesAndDiskUsage(t *testing.T) {
	ctx := context.Background()
	rt := fake.New()
	for _, im := range []string{"web:1", "job:1", "old:1"} {
		if err := rt.AddImage(im); err != nil {
			t.Fatal(err)
		}
	}
	// web-1 runs web:1; job-1 ran job:1 and stopped.
	for id, im := range map[string]string{"web-1": "web:1", "job-1": "job:1"} {
		if err := rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: im}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Exit("job-1", 0); err != nil {
		t.Fatal(err)
	}
	store, err := volume.New(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Ensure(volume.Ref{Namespace: "default", Name: "db.1"}, nil); err != nil {
		t.Fatal(err)
	}
	s := &nodeService{a: &Agent{rt: rt, volumes: store, log: slog.New(slog.DiscardHandler), creds: &session.Credentials{NodeID: "n1"}, cfg: Config{Name: "node-1"}}}

	du, err := s.DiskUsage(ctx, &berthv1.NodeDiskUsageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if du.Images != 3 || du.ImagesBytes != 3<<20 || du.ImagesReclaimableBytes != 1<<20 || du.Containers != 2 || du.Volumes != 1 || du.BuildCacheRunning || du.NodeName != "node-1" {
		t.Errorf("DiskUsage = %v, want 3 images (old:1 reclaimable), 2 containers, 1 volume, no build cache", du)
	}

	got, err := s.RemoveImages(ctx, &berthv1.NodeRemoveImagesRequest{Images: []string{
		"docker.io/library/web:1", "docker.io/library/job:1", "docker.io/library/nope:1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Removed) != 0 || len(got.Kept) != 2 || !slices.Equal(got.Missing, []string{"docker.io/library/nope:1"}) {
		t.Fatalf("RemoveImages = %v, want both kept and nope missing", got)
	}
	if k := got.Kept[0]; k.Image != "docker.io/library/web:1" || !k.Running || !slices.Equal(k.TaskIds, []string{"web-1"}) {
		t.Errorf("kept %v, want web:1 kept for running web-1", k)
	}

	got, err = s.RemoveImages(ctx, &berthv1.NodeRemoveImagesRequest{Images: []string{"docker.io/library/web:1", "docker.io/library/job:1"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Removed) != 1 || got.Removed[0].Name != "docker.io/library/job:1" || got.FreedBytes != 1<<20 || len(got.Kept) != 1 || !got.Kept[0].Running {
		t.Errorf("forced RemoveImages = %v, want job:1 removed and web:1 kept (running)", got)
	}

	pr, err := s.PruneImages(ctx, &berthv1.NodePruneImagesRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Removed) != 1 || pr.Removed[0].Name != "docker.io/library/old:1" {
		t.Errorf("PruneImages(all) = %v, want old:1 alone", pr)
	}
	left, _ := rt.ListImages(ctx)
	if len(left) != 1 || left[0].Name != "docker.io/library/web:1" {
		t.Errorf("images left %v, want web:1 alone", left)
	}
}
