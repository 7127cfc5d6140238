package agent

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// RemoveImages removes the asked images from the node's store, keeping
// those its containers use (see image.PlanRemove).
func (s *nodeService) RemoveImages(ctx context.Context, req *berthv1.NodeRemoveImagesRequest) (*berthv1.NodeImageRemoval, error) {
	images, containers, err := s.imagesAndContainers(ctx)
	if err != nil {
		return nil, err
	}
	plan := image.PlanRemove(images, containers, req.GetImages(), req.GetForce())
	out := s.removeImages(ctx, plan.Remove)
	out.Missing = plan.Missing
	for _, k := range plan.Kept {
		out.Kept = append(out.Kept, &berthv1.KeptImage{Image: k.Image, TaskIds: k.Containers, Running: k.Running})
	}
	return out, nil
}

// PruneImages removes the images no container of the node uses: the
// dangling ones, or all with req.All.
func (s *nodeService) PruneImages(ctx context.Context, req *berthv1.NodePruneImagesRequest) (*berthv1.NodeImageRemoval, error) {
	images, containers, err := s.imagesAndContainers(ctx)
	if err != nil {
		return nil, err
	}
	return s.removeImages(ctx, image.PlanPrune(images, containers, req.GetAll())), nil
}

// DiskUsage measures the node's images, containers, volumes and build
// cache.
func (s *nodeService) DiskUsage(ctx context.Context, _ *berthv1.NodeDiskUsageRequest) (*berthv1.NodeDiskUsage, error) {
	images, containers, err := s.imagesAndContainers(ctx)
	if err != nil {
		return nil, err
	}
	out := &berthv1.NodeDiskUsage{
		NodeId: s.a.creds.NodeID, NodeName: s.a.cfg.Name,
		Images: int32(len(images)), Containers: int32(len(containers)),
		ImagesReclaimableBytes: image.Reclaimable(images, containers),
	}
	for _, im := range images {
		out.ImagesBytes += im.Size
	}
	if u, ok := s.a.rt.(runtime.ContainerUsage); ok {
		for _, c := range containers {
			n, err := u.WritableBytes(ctx, c.ID)
			if errors.Is(err, runtime.ErrNotFound) {
				continue // removed since it was listed
			}
			if err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			out.ContainersBytes += n
		}
	}
	if s.a.volumes != nil {
		refs, err := s.a.volumes.List()
		if err != nil {
			return nil, volumeStatus(err)
		}
		for _, ref := range refs {
			size, exists, err := s.a.volumes.Size(ref)
			if err != nil {
				return nil, volumeStatus(err)
			}
			if exists {
				out.Volumes++
				out.VolumesBytes += size
			}
		}
	}
	if s.a.builder != nil {
		u, err := s.a.builder.CacheUsage(ctx)
		out.BuildCacheRunning, out.BuildCacheRecords = u.Running, int32(u.Records)
		out.BuildCacheBytes, out.BuildCacheReclaimableBytes = u.Bytes, u.Reclaimable
		if err != nil {
			out.BuildCacheError = err.Error()
		}
	}
	return out, nil
}

// imagesAndContainers lists the node's images and containers.
func (s *nodeService) imagesAndContainers(ctx context.Context) ([]runtime.Image, []runtime.Status, error) {
	images, err := s.a.rt.ListImages(ctx)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "listing images: %v", err)
	}
	containers, err := s.a.rt.List(ctx)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "listing containers: %v", err)
	}
	return images, containers, nil
}

// removeImages removes images from the store and says what went; an image
// that fails to go is an error naming it, after the others went.
func (s *nodeService) removeImages(ctx context.Context, images []runtime.Image) *berthv1.NodeImageRemoval {
	out := &berthv1.NodeImageRemoval{NodeId: s.a.creds.NodeID, NodeName: s.a.cfg.Name}
	var errs []error
	for _, im := range images {
		if err := s.a.rt.RemoveImage(ctx, im.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", im.Name, err))
			continue
		}
		s.a.log.Info("removed an image on request", "image", im.Name, "size", im.Size)
		out.Removed = append(out.Removed, &berthv1.RemovedImage{Name: im.Name, Digest: im.Digest, Size: im.Size})
		out.FreedBytes += im.Size
	}
	if err := errors.Join(errs...); err != nil {
		out.Error = err.Error()
	}
	return out
}
