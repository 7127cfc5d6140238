package apiserver

import (
	"errors"
	"io"
	"strings"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Logs streams the output of the matching tasks' containers, asking each
// node that holds some of them.
func (s *Server) Logs(req *berthv1.LogsRequest, stream berthv1.ClusterService_LogsServer) error {
	ns := namespaceOf(req.Namespace)
	byNode := map[string][]*berthv1.Task{}
	for _, t := range s.cfg.Cache.Tasks() {
		if t.NodeId == "" || t.GetStatus().GetState() < berthv1.TaskState_TASK_STATE_STARTING {
			continue
		}
		if req.TaskId != "" {
			if !strings.HasPrefix(t.GetMeta().GetId(), req.TaskId) {
				continue
			}
		} else if t.Namespace != ns || t.App != req.App || (req.Service != "" && t.Service != req.Service) {
			continue
		}
		byNode[t.NodeId] = append(byNode[t.NodeId], t)
	}
	if len(byNode) == 0 {
		what := req.App + "/" + req.Service
		if req.TaskId != "" {
			what = "task " + req.TaskId
		}
		return status.Errorf(codes.NotFound, "no containers of %s have started; `berth ps -a` shows its tasks", what)
	}
	ctx := stream.Context()
	var sendMu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(byNode))
	for nodeID, tasks := range byNode {
		n, ok := s.cfg.Cache.Node(nodeID)
		if !ok {
			continue
		}
		info := map[string]*berthv1.Task{}
		ids := make([]string, 0, len(tasks))
		for _, t := range tasks {
			info[t.GetMeta().GetId()] = t
			ids = append(ids, t.GetMeta().GetId())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli, err := s.cfg.Nodes.Client(n)
			if err != nil {
				errs <- err
				return
			}
			logs, err := cli.Logs(ctx, &berthv1.NodeLogsRequest{TaskIds: ids, Follow: req.Follow, Tail: req.Tail})
			if err != nil {
				errs <- err
				return
			}
			for {
				entry, err := logs.Recv()
				if err != nil {
					if status.Code(err) != codes.Canceled && !errors.Is(err, io.EOF) {
						errs <- err
					}
					return
				}
				entry.NodeId = nodeID
				if t := info[entry.TaskId]; t != nil {
					entry.Slot, entry.Service = t.Slot, t.Service
				}
				sendMu.Lock()
				err = stream.Send(entry)
				sendMu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if ctx.Err() == nil {
			return status.Errorf(codes.Unavailable, "reading logs: %v", err)
		}
	}
	return nil
}
