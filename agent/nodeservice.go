package agent

import (
	"context"
	"errors"
	"io"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// nodeService serves the node's logs and images to the control plane.
type nodeService struct {
	berthv1.UnimplementedNodeServiceServer
	a *Agent
}

// authorize asks the access table (api/access), as the control plane
// does, whether the caller may call method: the node's methods admit the
// control plane's servers only.
func authorize(ctx context.Context, method string) error {
	cert, ok := identity.PeerCertificate(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "only the control plane may call a node, with its server certificate")
	}
	p, err := access.FromCertificate(cert)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "the client certificate names no Berth identity: %v", err)
	}
	if err := access.Check(p, method, ""); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

func authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// Logs streams the output of the asked tasks' containers.
func (s *nodeService) Logs(req *berthv1.NodeLogsRequest, stream berthv1.NodeService_LogsServer) error {
	ctx := stream.Context()
	opts := runtime.LogOptions{Follow: req.Follow, Tail: req.Tail}
	if req.Since != nil {
		opts.Since = req.Since.AsTime()
	}
	if req.Until != nil {
		opts.Until = req.Until.AsTime()
	}
	errc := make(chan error, len(req.TaskIds))
	sendMu := make(chan struct{}, 1)
	for _, id := range req.TaskIds {
		go func() {
			errc <- s.a.rt.Logs(ctx, id, opts, func(l runtime.LogLine) error {
				entry := &berthv1.LogEntry{TaskId: id, Stream: berthv1.LogStream_LOG_STREAM_STDOUT, Line: l.Line}
				if l.Stream == runtime.Stderr {
					entry.Stream = berthv1.LogStream_LOG_STREAM_STDERR
				}
				if !l.At.IsZero() {
					entry.At = timestamppb.New(l.At)
				}
				sendMu <- struct{}{}
				defer func() { <-sendMu }()
				return stream.Send(entry)
			})
		}()
	}
	var first error
	for range req.TaskIds {
		if err := <-errc; err != nil && first == nil && !errors.Is(err, runtime.ErrNotFound) && ctx.Err() == nil {
			first = err
		}
	}
	if first != nil {
		return status.Errorf(codes.Internal, "reading logs: %v", first)
	}
	return nil
}

// ImportImage loads an uploaded archive into the node's image store.
func (s *nodeService) ImportImage(stream berthv1.NodeService_ImportImageServer) error {
	pr := chunkReader(func() ([]byte, error) {
		msg, err := stream.Recv()
		return msg.GetChunk(), err
	})
	images, err := s.a.rt.ImportImage(stream.Context(), pr)
	pr.CloseWithError(io.ErrClosedPipe)
	res := &berthv1.NodeImportResult{NodeId: s.a.creds.NodeID, NodeName: s.a.cfg.Name}
	if err != nil {
		res.Error = err.Error()
	}
	res.Images = toImages(images)
	s.a.noteImages(stream.Context())
	return stream.SendAndClose(res)
}

// ListImages lists the node's images.
func (s *nodeService) ListImages(ctx context.Context, _ *berthv1.ListImagesRequest) (*berthv1.NodeImages, error) {
	images, err := s.a.rt.ListImages(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "listing images: %v", err)
	}
	return &berthv1.NodeImages{NodeId: s.a.creds.NodeID, NodeName: s.a.cfg.Name, Images: toImages(images)}, nil
}

func toImages(images []runtime.Image) []*berthv1.Image {
	out := make([]*berthv1.Image, 0, len(images))
	for _, im := range images {
		i := &berthv1.Image{Name: im.Name, Digest: im.Digest, Size: im.Size}
		if !im.CreatedAt.IsZero() {
			i.CreatedAt = timestamppb.New(im.CreatedAt)
		}
		out = append(out, i)
	}
	return out
}

// chunkReader reads the chunks of a client stream as one byte stream: next
// returns the next chunk, and io.EOF after the last. The caller closes the
// reader when it stops reading early, which ends the goroutine.
func chunkReader(next func() ([]byte, error)) *io.PipeReader {
	pr, pw := io.Pipe()
	go func() {
		for {
			chunk, err := next()
			if err == io.EOF {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(chunk); err != nil {
				return // the reader stopped reading
			}
		}
	}()
	return pr
}
