package apiserver

import (
	"cmp"
	"context"
	"sort"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// topNodeTimeout bounds the wait for one node's answer, so one slow node
// cannot hold the others' numbers back.
const topNodeTimeout = 5 * time.Second

// Top asks the nodes of the matching running tasks for their resource
// use, all at once, and merges the answers in the order of the tasks (app,
// service, slot). Nodes that do not answer in time are listed as
// unreachable, and their tasks left out.
func (s *Server) Top(ctx context.Context, req *berthv1.TopRequest) (*berthv1.TopResponse, error) {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	nodeID := req.NodeId
	if nodeID != "" {
		n, ok := s.findNode(nodeID)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", nodeID)
		}
		nodeID = n.GetMeta().GetId()
	}
	var tasks []*berthv1.Task
	byNode := map[string][]string{}
	for _, t := range s.cfg.Cache.Tasks() {
		if !sc.has(t.Namespace) || t.NodeId == "" || t.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_RUNNING ||
			(req.App != "" && t.App != req.App) || (req.Service != "" && t.Service != req.Service) ||
			(nodeID != "" && t.NodeId != nodeID) {
			continue
		}
		tasks = append(tasks, t)
		byNode[t.NodeId] = append(byNode[t.NodeId], t.GetMeta().GetId())
	}
	sort.Slice(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.NodeId < b.NodeId
	})

	var (
		mu          sync.Mutex
		stats       = map[string]*berthv1.TaskStats{}
		unreachable []string
		nodes       []*berthv1.Node
	)
	for id := range byNode {
		n, ok := s.cfg.Cache.Node(id)
		if !ok {
			unreachable = append(unreachable, id)
			continue
		}
		nodes = append(nodes, n)
	}
	errs := s.eachNode(ctx, nodes, topNodeTimeout, func(ctx context.Context, i int, cli berthv1.NodeServiceClient) error {
		id := nodes[i].GetMeta().GetId()
		resp, err := cli.Stats(ctx, &berthv1.NodeStatsRequest{TaskIds: byNode[id]})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, st := range resp.Tasks {
			st.NodeId = id
			stats[st.TaskId] = st
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			name := cmp.Or(nodes[i].Name, nodes[i].GetMeta().GetId())
			s.log.Warn("top: node did not answer", "node", name, "err", err)
			unreachable = append(unreachable, name)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	resp := &berthv1.TopResponse{Unreachable: unreachable}
	sort.Strings(resp.Unreachable)
	for _, t := range tasks {
		if st := stats[t.GetMeta().GetId()]; st != nil {
			resp.Tasks = append(resp.Tasks, st)
		}
	}
	return resp, nil
}
