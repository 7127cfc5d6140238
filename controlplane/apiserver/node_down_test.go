package apiserver

import (
	"context"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestMarkNodesDown: an operator confirms unreachable nodes down; a
// request naming a connected or unknown node marks none.
func TestMarkNodesDown(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	since := timestamppb.Now()
	node := func(id, name string, st berthv1.NodeStatus) *berthv1.Node {
		return &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: name, Status: st, StatusSince: since, StatusMessage: "agent disconnected"}
	}
	addNode(t, s, node("n1", "alpha", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE))
	addNode(t, s, node("n2", "beta", berthv1.NodeStatus_NODE_STATUS_UNREACHABLE))
	addNode(t, s, node("n3", "gamma", berthv1.NodeStatus_NODE_STATUS_READY))
	var txn store.Txn
	tk := &berthv1.Task{Meta: &berthv1.Meta{Id: "t1"}, Namespace: "default", App: "shop", Service: "web", NodeId: "n1", Slot: 1,
		DesiredState: berthv1.TaskState_TASK_STATE_RUNNING, Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}}
	txn.Create(store.TaskKey("default", "shop", "web", "t1"), tk)
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		nodes []string
		code  codes.Code
		says  string
	}{
		{"none named", nil, codes.InvalidArgument, "berth node down NODE"},
		{"one connected", []string{"alpha", "gamma"}, codes.FailedPrecondition, "gamma is connected"},
		{"one unknown", []string{"alpha", "nope"}, codes.FailedPrecondition, `"nope" not found`},
	} {
		_, err := s.MarkNodesDown(ctx, &berthv1.MarkNodesDownRequest{Nodes: tc.nodes})
		if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.code, tc.says)
		}
	}
	if n, _ := s.cfg.Cache.Node("n1"); n.Status != berthv1.NodeStatus_NODE_STATUS_UNREACHABLE {
		t.Fatalf("a refused request marked alpha %v", n.Status)
	}

	resp, err := s.MarkNodesDown(ctx, &berthv1.MarkNodesDownRequest{Nodes: []string{"alpha", "n2", "alpha"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Nodes) != 2 || resp.Tasks != 1 {
		t.Errorf("response has %d nodes and %d tasks, want 2 and 1", len(resp.Nodes), resp.Tasks)
	}
	for _, id := range []string{"n1", "n2"} {
		n, _ := s.cfg.Cache.Node(id)
		if n.Status != berthv1.NodeStatus_NODE_STATUS_DOWN || !strings.Contains(n.StatusMessage, "confirmed down") {
			t.Errorf("node %s is %v (%q), want down, confirmed", id, n.Status, n.StatusMessage)
		}
	}
	// Again: nothing more to do, and no error.
	if _, err := s.MarkNodesDown(ctx, &berthv1.MarkNodesDownRequest{Nodes: []string{"alpha"}}); err != nil {
		t.Errorf("marking a down node down again: %v", err)
	}
}
