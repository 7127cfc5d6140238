package image

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/fake"
)

func TestSelectUnused(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	images := []runtime.Image{
		{Name: "a", Digest: "sha256:a", Size: 100, CreatedAt: t0.Add(3 * time.Hour)},
		{Name: "b", Digest: "sha256:b", Size: 100, CreatedAt: t0.Add(1 * time.Hour)},
		{Name: "c", Digest: "sha256:c", Size: 100, CreatedAt: t0},
		{Name: "c-alias", Digest: "sha256:c", Size: 100, CreatedAt: t0.Add(-time.Hour)},
		{Name: "d", Digest: "sha256:d", Size: 100, CreatedAt: t0.Add(2 * time.Hour)},
	}
	tests := []struct {
		name  string
		inUse []string
		want  []string
	}{
		{"oldest first", nil, []string{"c-alias", "c", "b", "d", "a"}},
		{"in use is kept, and other names of its manifest", []string{"c"}, []string{"b", "d", "a"}},
		{"everything in use", []string{"a", "b", "c", "d"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inUse := map[string]bool{}
			for _, n := range tt.inUse {
				inUse[n] = true
			}
			var got []string
			for _, im := range SelectUnused(images, inUse) {
				got = append(got, im.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("selected %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCleanupOnce(t *testing.T) {
	ctx := context.Background()
	rt := fake.New()
	t0 := time.Unix(1_700_000_000, 0)
	for i, ref := range []string{"old", "running", "newer"} {
		if err := rt.AddImage(ref); err != nil {
			t.Fatal(err)
		}
		if err := rt.SetImageCreated(ref, t0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Create(ctx, runtime.ContainerSpec{ID: "c1", Image: "running"}); err != nil {
		t.Fatal(err)
	}
	// Fake disk: 100 units, each image (1 MiB in the fake) frees 5 when
	// removed.
	used := uint64(90)
	usage := func(string) (uint64, uint64, error) {
		imgs, _ := rt.ListImages(ctx)
		return used - uint64(3-len(imgs))*5, 100, nil
	}
	c := &Cleanup{Runtime: rt, Dir: "/", HighPercent: 85, LowPercent: 80, Usage: usage}
	removed, err := c.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docker.io/library/old:latest", "docker.io/library/newer:latest"}; !slices.Equal(removed, want) {
		t.Fatalf("removed %q, want %q (unused, oldest first)", removed, want)
	}
	if ok, _ := rt.ImageExists(ctx, "running"); !ok {
		t.Fatal("the image of a container was removed")
	}

	// Below the high mark nothing is removed.
	used = 70
	if removed, err := c.Once(ctx); err != nil || len(removed) != 0 {
		t.Fatalf("below the high mark: removed %q, %v; want nothing", removed, err)
	}
}
