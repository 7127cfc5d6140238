package apiserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MarkNodesDown is an operator's word that nodes out of contact are down:
// when most nodes lose contact at once the control plane holds back (it
// suspects its own network, see nodehealth.Guard), and only an operator
// who knows the machines are gone lets their tasks be replaced. Every
// node named must exist and be out of contact; otherwise nothing is
// written. A node that reconnects meanwhile stays ready.
func (s *Server) MarkNodesDown(ctx context.Context, req *berthv1.MarkNodesDownRequest) (*berthv1.MarkNodesDownResponse, error) {
	if len(req.Nodes) == 0 {
		return nil, status.Error(codes.InvalidArgument, "name the nodes to mark down: berth node down NODE...")
	}
	nodes, err := s.nodesOutOfContact(req.Nodes)
	if err != nil {
		return nil, err
	}
	who := "an operator"
	if p, ok := access.FromContext(ctx); ok {
		who = p.String()
	}
	changes := make([]store.Change, 0, len(nodes))
	for _, n := range nodes {
		changes = append(changes, store.Change{Key: store.NodeKey(n.GetMeta().GetId()), Current: n, Apply: func(o store.Object) bool {
			n := o.(*berthv1.Node)
			if n.Status == berthv1.NodeStatus_NODE_STATUS_READY || n.Status == berthv1.NodeStatus_NODE_STATUS_DOWN {
				return false
			}
			n.Status, n.StatusSince = berthv1.NodeStatus_NODE_STATUS_DOWN, timestamppb.Now()
			n.StatusMessage = "confirmed down by " + who
			return true
		}})
	}
	rev, err := s.cfg.Store.Update(ctx, changes)
	if err != nil {
		return nil, storeError(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		return nil, storeError(err)
	}
	resp := &berthv1.MarkNodesDownResponse{}
	for _, n := range nodes {
		id := n.GetMeta().GetId()
		now, ok := s.cfg.Cache.Node(id)
		if !ok {
			continue
		}
		resp.Nodes = append(resp.Nodes, now)
		if now.Status != berthv1.NodeStatus_NODE_STATUS_DOWN || now.Status == n.Status {
			continue
		}
		tasks := liveTasks(s.cfg.Cache.NodeTasks(id))
		resp.Tasks += tasks
		msg := fmt.Sprintf("node %s confirmed down by %s; its %d live tasks are replaced on other nodes", now.Name, who, tasks)
		s.log.Warn("node confirmed down", "node", now.Name, "id", id, "by", who)
		s.cfg.Store.RecordEvent(&berthv1.Event{
			Kind: store.EventKindNode, ObjectId: id, Action: "down", Message: msg,
			Attributes: map[string]string{store.AttrNode: id, store.AttrNodeName: now.Name, "from": statusWord(n.Status)},
		})
	}
	return resp, nil
}

// nodesOutOfContact finds the nodes named, and refuses them all, naming
// each problem, when one is unknown or connected.
func (s *Server) nodesOutOfContact(names []string) ([]*berthv1.Node, error) {
	var nodes []*berthv1.Node
	var problems []string
	seen := map[string]bool{}
	for _, name := range names {
		n, ok := s.findNode(name)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("node %q not found", name))
		case n.Status == berthv1.NodeStatus_NODE_STATUS_READY:
			problems = append(problems, fmt.Sprintf("node %s is connected (ready): it is not out of contact; `berth node drain %s` moves its tasks", n.Name, n.Name))
		case !seen[n.GetMeta().GetId()]:
			seen[n.GetMeta().GetId()] = true
			nodes = append(nodes, n)
		}
	}
	if len(problems) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "no node marked down: %s; `berth node ls` lists the nodes", strings.Join(problems, "; "))
	}
	return nodes, nil
}

func statusWord(s berthv1.NodeStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "NODE_STATUS_"))
}
