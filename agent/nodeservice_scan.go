package agent

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/sbom"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Sbom lists the packages of an image: pulled first when the node lacks
// it (from the request's source), then mounted read-only for the SBOM
// library, and unmounted before the answer.
func (s *nodeService) Sbom(ctx context.Context, req *berthv1.NodeSbomRequest) (*berthv1.NodeSbomResponse, error) {
	files, ok := s.a.rt.(runtime.ImageFiles)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this node's runtime cannot read image files; scan on a node that runs containerd")
	}
	src := req.GetSource()
	if src == nil {
		src = s.a.puller.Source(req.GetImage())
	}
	if _, err := s.a.puller.Pull(ctx, req.GetImage(), req.GetDigest(), src, nil); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "image %s is not on node %s and could not be pulled: %v", req.GetImage(), s.a.cfg.Name, err)
	}
	m, err := files.MountImage(ctx, req.GetImage())
	if errors.Is(err, runtime.ErrImageNotFound) {
		return nil, status.Errorf(codes.NotFound, "image %s is not on node %s", req.GetImage(), s.a.cfg.Name)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading image %s on node %s: %v", req.GetImage(), s.a.cfg.Name, err)
	}
	defer func() {
		if err := m.Release(); err != nil {
			s.a.log.Warn("releasing an image's view", "image", req.GetImage(), "err", err)
		}
	}()
	out, err := sbom.Read(ctx, m.Dir)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "SBOM of image %s on node %s: %v", req.GetImage(), s.a.cfg.Name, err)
	}
	out.Image, out.Digest, out.Node = req.GetImage(), m.Digest, s.a.cfg.Name
	return &berthv1.NodeSbomResponse{Sbom: out}, nil
}
