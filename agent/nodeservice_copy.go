package agent

import (
	"bufio"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// copyChunk is the size of the tar chunks sent to the server.
const copyChunk = 64 << 10

// CopyFrom streams a path of a task's container (the container ID is the
// task ID) as a tar archive.
func (s *nodeService) CopyFrom(req *berthv1.NodeCopyFromRequest, stream berthv1.NodeService_CopyFromServer) error {
	files, err := s.files(req.TaskId, req.Path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(chunkWriter(func(b []byte) error {
		return stream.Send(&berthv1.CopyChunk{Data: b})
	}), copyChunk)
	if err := files.CopyFrom(stream.Context(), req.TaskId, req.Path, w); err != nil {
		return s.copyError(req.TaskId, err)
	}
	return w.Flush()
}

// CopyTo unpacks a streamed tar archive at a path of a task's container.
func (s *nodeService) CopyTo(stream berthv1.NodeService_CopyToServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	files, err := s.files(first.TaskId, first.Path)
	if err != nil {
		return err
	}
	pending := first.Chunk
	pr := chunkReader(func() ([]byte, error) {
		if pending != nil {
			b := pending
			pending = nil
			return b, nil
		}
		msg, err := stream.Recv()
		return msg.GetChunk(), err
	})
	n, err := files.CopyTo(stream.Context(), first.TaskId, first.Path, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return s.copyError(first.TaskId, err)
	}
	return stream.SendAndClose(&berthv1.CopyToTaskResponse{TaskId: first.TaskId, Entries: uint64(n)})
}

// files is the runtime's file access, for a request that names a task
// and a path.
func (s *nodeService) files(taskID, path string) (runtime.Files, error) {
	if taskID == "" || path == "" {
		return nil, status.Error(codes.InvalidArgument, "copy: name a task and a path")
	}
	files, ok := s.a.rt.(runtime.Files)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "node %s runs no container files (its runtime is %q)", s.a.cfg.Name, s.a.cfg.Runtime)
	}
	return files, nil
}

// copyError maps the runtime's copy errors to gRPC codes.
func (s *nodeService) copyError(taskID string, err error) error {
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		return status.Errorf(codes.FailedPrecondition, "task %s has no running container on node %s", taskID, s.a.cfg.Name)
	case errors.Is(err, runtime.ErrPathNotFound):
		return status.Errorf(codes.NotFound, "%v", err)
	case errors.Is(err, runtime.ErrReadOnly):
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	case errors.Is(err, runtime.ErrTooLarge):
		return status.Errorf(codes.ResourceExhausted, "%v", err)
	}
	return status.Errorf(codes.InvalidArgument, "%v", err)
}

// chunkWriter sends each write as a message.
type chunkWriter func([]byte) error

func (f chunkWriter) Write(p []byte) (int, error) {
	// The message is marshalled before Send returns, so p can be reused.
	if err := f(p); err != nil {
		return 0, err
	}
	return len(p), nil
}
