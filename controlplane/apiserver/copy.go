package apiserver

import (
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// CopyFromTask relays a path of a running task's container, as a tar
// archive, from the task's node.
func (s *Server) CopyFromTask(req *berthv1.CopyFromTaskRequest, stream berthv1.ClusterService_CopyFromTaskServer) error {
	task, n, cli, err := s.copyTarget(req.Namespace, req.GetTarget())
	if err != nil {
		return err
	}
	ctx := stream.Context()
	down, err := cli.CopyFrom(ctx, &berthv1.NodeCopyFromRequest{TaskId: task.GetMeta().GetId(), Path: req.GetTarget().GetPath()})
	if err != nil {
		return nodeExecError(n, err)
	}
	s.log.Info("copy from task", "task", task.GetMeta().GetId(), "node", n.Name, "path", req.GetTarget().GetPath())
	return relayFromNode(ctx, n, down.Recv, stream.Send)
}

// CopyToTask relays a tar archive to the node of a running task, which
// unpacks it at a path of the task's container.
func (s *Server) CopyToTask(stream berthv1.ClusterService_CopyToTaskServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	task, n, cli, err := s.copyTarget(first.Namespace, first.GetTarget())
	if err != nil {
		return err
	}
	ctx := stream.Context()
	up, err := cli.CopyTo(ctx)
	if err != nil {
		return nodeExecError(n, err)
	}
	msg := &berthv1.NodeCopyToRequest{TaskId: task.GetMeta().GetId(), Path: first.GetTarget().GetPath(), Chunk: first.Chunk}
	s.log.Info("copy to task", "task", msg.TaskId, "node", n.Name, "path", msg.Path)
	for {
		if err := up.Send(msg); err != nil {
			// The node ended the call; CloseAndRecv says why.
			break
		}
		next, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		msg = &berthv1.NodeCopyToRequest{Chunk: next.Chunk}
	}
	res, err := up.CloseAndRecv()
	if err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return nodeExecError(n, err)
	}
	return stream.SendAndClose(res)
}

// copyTarget finds the running task a copy names, its node and a client
// of the node.
func (s *Server) copyTarget(namespace string, t *berthv1.CopyTarget) (*berthv1.Task, *berthv1.Node, berthv1.NodeServiceClient, error) {
	if t.GetPath() == "" {
		return nil, nil, nil, status.Error(codes.InvalidArgument, "copy: no path in the container; write it as TASK:/path")
	}
	task, err := s.execTask(&berthv1.ExecStart{Namespace: namespace, TaskId: t.GetTaskId(), App: t.GetApp(), Service: t.GetService()})
	if err != nil {
		return nil, nil, nil, err
	}
	n, ok := s.cfg.Cache.Node(task.NodeId)
	if !ok {
		return nil, nil, nil, status.Errorf(codes.Unavailable, "node %s of task %s is not in the cluster any more", task.NodeId, task.GetMeta().GetId())
	}
	cli, err := s.cfg.Nodes.Client(n)
	if err != nil {
		return nil, nil, nil, status.Errorf(codes.Unavailable, "reaching node %s: %v", n.Name, err)
	}
	return task, n, cli, nil
}
