package apiserver

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exec runs a command in a task's container: it finds the task and its
// node, starts the command there, and relays both ways until the node
// reports the exit code. The node's first message names the task.
func (s *Server) Exec(stream berthv1.ClusterService_ExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "exec must start with an ExecStart message")
	}
	if len(start.Command) == 0 {
		return status.Error(codes.InvalidArgument, "exec: no command to run; give one after --")
	}
	task, err := s.execTask(start)
	if err != nil {
		return err
	}
	n, ok := s.cfg.Cache.Node(task.NodeId)
	if !ok {
		return status.Errorf(codes.Unavailable, "node %s of task %s is not in the cluster any more", task.NodeId, task.GetMeta().GetId())
	}
	cli, err := s.cfg.Nodes.Client(n)
	if err != nil {
		return status.Errorf(codes.Unavailable, "reaching node %s: %v", n.Name, err)
	}
	ctx := stream.Context()
	up, err := cli.Exec(ctx)
	if err != nil {
		return status.Errorf(codes.Unavailable, "exec on node %s: %v", n.Name, err)
	}
	onNode := &berthv1.ExecStart{
		TaskId: task.GetMeta().GetId(), Command: start.Command, Tty: start.Tty, Stdin: start.Stdin,
		Env: start.Env, User: start.User, WorkingDir: start.WorkingDir, Size: start.Size,
	}
	if err := up.Send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Start{Start: onNode}}); err != nil {
		_, rerr := up.Recv()
		return nodeExecError(n, errorOr(rerr, err))
	}
	s.log.Info("exec", "task", onNode.TaskId, "node", n.Name, "command", start.Command[0], "tty", start.Tty)

	// Client to node. This goroutine ends when the call does: then both
	// the client's Recv and the node's Send fail.
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					up.CloseSend()
				}
				return
			}
			if err := up.Send(msg); err != nil {
				return // the node ended the call; its Recv below says why
			}
		}
	}()
	// Node to client, until the node ends the call.
	return relayFromNode(ctx, n, up.Recv, stream.Send)
}

// relayFromNode sends the client what node n sends, until the node ends
// the call (nil) or the call fails: the caller's end as its context's
// error, the node's as nodeExecError says.
func relayFromNode[T any](ctx context.Context, n *berthv1.Node, recv func() (T, error), send func(T) error) error {
	for {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return nodeExecError(n, err)
		}
		if err := send(msg); err != nil {
			return err
		}
	}
}

// nodeExecError keeps the node's own status (not found, bad command), and
// says which node failed otherwise.
func nodeExecError(n *berthv1.Node, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown && st.Code() != codes.Unavailable {
		return err
	}
	return status.Errorf(codes.Unavailable, "exec on node %s: %v", n.Name, err)
}

// execTask finds the task ExecStart names: by ID prefix, or the running
// task with the lowest slot of app/service.
func (s *Server) execTask(start *berthv1.ExecStart) (*berthv1.Task, error) {
	ns := namespaceOf(start.Namespace)
	running := func(t *berthv1.Task) bool {
		return t.NodeId != "" && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING
	}
	var found []*berthv1.Task
	if start.TaskId != "" {
		for _, t := range s.cfg.Cache.Tasks() {
			if t.Namespace == ns && strings.HasPrefix(t.GetMeta().GetId(), start.TaskId) {
				found = append(found, t)
			}
		}
		switch {
		case len(found) == 0:
			return nil, status.Errorf(codes.NotFound, "no task with ID %q in namespace %q; `berth ps -a` lists the tasks", start.TaskId, ns)
		case len(found) > 1:
			return nil, status.Errorf(codes.InvalidArgument, "task ID prefix %q matches %d tasks; give more of the ID", start.TaskId, len(found))
		case !running(found[0]):
			t := found[0]
			return nil, status.Errorf(codes.FailedPrecondition, "task %s is %s, not running; commands run only in running tasks",
				t.GetMeta().GetId(), taskstate.Name(t.GetStatus().GetState()))
		}
		return found[0], nil
	}
	if start.App == "" || start.Service == "" {
		return nil, status.Error(codes.InvalidArgument, "exec: name a task ID, or an app and a service")
	}
	for _, t := range s.cfg.Cache.Tasks() {
		if t.Namespace == ns && t.App == start.App && t.Service == start.Service &&
			t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING && running(t) {
			found = append(found, t)
		}
	}
	if len(found) == 0 {
		return nil, status.Errorf(codes.NotFound, "service %s/%s has no running task in namespace %q; `berth ps %s/%s` shows its tasks",
			start.App, start.Service, ns, start.App, start.Service)
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.GetMeta().GetId() < b.GetMeta().GetId()
	})
	return found[0], nil
}
