package agent

import (
	"context"
	"errors"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/volume"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// VolumeUsage reports the size of the asked volumes, or of all the node's.
func (s *nodeService) VolumeUsage(_ context.Context, req *berthv1.NodeVolumeUsageRequest) (*berthv1.NodeVolumeUsageResponse, error) {
	refs := make([]volume.Ref, 0, len(req.GetVolumes()))
	for _, v := range req.GetVolumes() {
		refs = append(refs, volume.Ref{Namespace: v.GetNamespace(), Name: v.GetName()})
	}
	if len(refs) == 0 {
		var err error
		if refs, err = s.a.volumes.List(); err != nil {
			return nil, volumeStatus(err)
		}
	}
	resp := &berthv1.NodeVolumeUsageResponse{Volumes: make([]*berthv1.NodeVolumeUsage, 0, len(refs))}
	for _, ref := range refs {
		size, exists, err := s.a.volumes.Size(ref)
		if err != nil {
			return nil, volumeStatus(err)
		}
		resp.Volumes = append(resp.Volumes, &berthv1.NodeVolumeUsage{Namespace: ref.Namespace, Name: ref.Name, SizeBytes: size, Exists: exists})
	}
	return resp, nil
}

// RemoveVolume deletes a volume's data; refused while a container of this
// node that has not stopped uses it. The containers of ended tasks, which
// the node keeps for their logs until the tasks are forgotten, never run
// again: their marks are dropped first.
func (s *nodeService) RemoveVolume(ctx context.Context, req *berthv1.NodeRemoveVolumeRequest) (*berthv1.NodeRemoveVolumeResponse, error) {
	ref := volume.Ref{Namespace: req.GetNamespace(), Name: req.GetName()}
	for _, id := range s.a.volumes.Users(ref) {
		st, err := s.a.rt.Inspect(ctx, id)
		if errors.Is(err, runtime.ErrNotFound) || (err == nil && st.State == runtime.StateStopped) {
			s.a.volumes.Release(id)
		}
	}
	if err := s.a.volumes.Remove(ref); err != nil {
		return nil, volumeStatus(err)
	}
	return &berthv1.NodeRemoveVolumeResponse{}, nil
}

// volumeStatus maps the volume store's errors to gRPC codes.
func volumeStatus(err error) error {
	var invalid *volume.InvalidRefError
	switch {
	case errors.Is(err, volume.ErrInUse):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.As(err, &invalid):
		return status.Error(codes.InvalidArgument, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}
