package agent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/berthproject/berth/agent/build"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Build builds an image with the node's builder: the stream's first
// message is the header, the rest the build context as a tar. It answers
// with the builder's progress, then the result.
func (s *nodeService) Build(stream berthv1.NodeService_BuildServer) error {
	ctx := stream.Context()
	if s.a.builder == nil {
		return status.Errorf(codes.FailedPrecondition, "node %s cannot build images: it runs the %q runtime; build on a node that runs containerd", s.a.cfg.Name, s.a.cfg.Runtime)
	}
	first, err := stream.Recv()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "reading the build header: %v", err)
	}
	header := first.GetHeader()
	if header == nil {
		return status.Error(codes.InvalidArgument, "a build stream starts with its header, then the context")
	}

	pr := chunkReader(func() ([]byte, error) {
		msg, err := stream.Recv()
		if err == nil && msg.GetHeader() != nil {
			err = fmt.Errorf("%w: a second header in the build stream", build.ErrInvalid)
		}
		return msg.GetContextChunk(), err
	})
	res, err := s.a.builder.Build(ctx, header, pr, func(sr *controlapi.StatusResponse) error {
		b, err := proto.Marshal(sr)
		if err != nil {
			return fmt.Errorf("encoding build progress: %w", err)
		}
		return stream.Send(&berthv1.BuildEvent{Event: &berthv1.BuildEvent_Status{Status: b}})
	})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return buildStatus(err)
	}
	// The control plane learns the new image and its digest, as after an
	// import, so placement and digest pinning see it at once.
	s.a.noteImages(ctx)
	return stream.Send(&berthv1.BuildEvent{Event: &berthv1.BuildEvent_Result{Result: &berthv1.BuildResult{
		NodeId:   s.a.creds.NodeID,
		NodeName: s.a.cfg.Name,
		Image:    res.Image,
		Digest:   res.Digest,
	}}})
}

// buildStatus maps a build error to its gRPC code, keeping the builder's
// message, which names the Dockerfile line at fault.
func buildStatus(err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, build.ErrInvalid), errors.Is(err, build.ErrFailed):
		code = codes.InvalidArgument
	case errors.Is(err, build.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
