package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/fake"
	"github.com/berthproject/berth/agent/volume"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestNodeServiceVolumes(t *testing.T) {
	ctx := context.Background()
	store, err := volume.New(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// c1 runs; c2 ran and stopped: the container of an ended task, which
	// no longer holds its volume.
	rt := fake.New()
	if err := rt.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		if err := rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: "busybox"}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Exit("c2", 0); err != nil {
		t.Fatal(err)
	}
	s := &nodeService{a: &Agent{volumes: store, rt: rt}}
	data := volume.Ref{Namespace: "team", Name: "db.1"}
	path, _, err := store.Ensure(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "rows"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}

	old := volume.Ref{Namespace: "team", Name: "old.1"}
	if _, _, err := store.Ensure(old, nil); err != nil {
		t.Fatal(err)
	}
	store.Acquire("c2", old)

	all, err := s.VolumeUsage(ctx, &berthv1.NodeVolumeUsageRequest{})
	if err != nil || len(all.Volumes) != 2 {
		t.Fatalf("VolumeUsage(all) = %v, %v; want two volumes", all, err)
	}
	if v := all.Volumes[0]; v.Namespace != "team" || v.Name != "db.1" || v.SizeBytes != 1000 || !v.Exists {
		t.Errorf("VolumeUsage(all) = %v, want team/db.1 with 1000 bytes", v)
	}
	some, err := s.VolumeUsage(ctx, &berthv1.NodeVolumeUsageRequest{Volumes: []*berthv1.NodeVolumeRef{{Namespace: "team", Name: "missing.1"}}})
	if err != nil || len(some.Volumes) != 1 || some.Volumes[0].Exists {
		t.Errorf("VolumeUsage(missing) = %v, %v; want one that does not exist", some, err)
	}

	tests := []struct {
		name string
		ref  volume.Ref
		busy bool
		want codes.Code
	}{
		{"in use", data, true, codes.FailedPrecondition},
		{"used by a stopped container", volume.Ref{Namespace: "team", Name: "old.1"}, false, codes.OK},
		{"bad name", volume.Ref{Namespace: "team", Name: "../x"}, false, codes.InvalidArgument},
		{"removed", data, false, codes.OK},
		{"again", data, false, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.busy {
				store.Acquire("c1", tc.ref)
				defer store.Release("c1")
			}
			_, err := s.RemoveVolume(ctx, &berthv1.NodeRemoveVolumeRequest{Namespace: tc.ref.Namespace, Name: tc.ref.Name})
			if got := status.Code(err); got != tc.want {
				t.Errorf("RemoveVolume = %v, want code %v", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("volume data after RemoveVolume: %v", err)
	}
}
