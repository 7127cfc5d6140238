package nodehealth

import (
	"context"
	"log/slog"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUnreachableNodesGoDownAfterTheGrace(t *testing.T) {
	s := storetest.New(t)
	c := storetest.NewCache(t, s)
	now := time.Now()
	nodes := []*berthv1.Node{
		{Meta: &berthv1.Meta{Id: "long-gone"}, Name: "long-gone", Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, StatusSince: timestamppb.New(now.Add(-time.Minute))},
		{Meta: &berthv1.Meta{Id: "just-lost"}, Name: "just-lost", Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, StatusSince: timestamppb.New(now)},
		{Meta: &berthv1.Meta{Id: "fine"}, Name: "fine", Status: berthv1.NodeStatus_NODE_STATUS_READY, StatusSince: timestamppb.New(now.Add(-time.Hour))},
	}
	var txn store.Txn
	for _, n := range nodes {
		txn.Create(store.NodeKey(n.Meta.Id), n)
	}
	rev, err := s.Commit(context.Background(), &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	const grace = 200 * time.Millisecond
	h := New(s, c, slog.New(slog.DiscardHandler), grace)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	status := func(id string) berthv1.NodeStatus {
		n, _ := c.Node(id)
		return n.GetStatus()
	}
	deadline := time.Now().Add(20 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for status("long-gone") != berthv1.NodeStatus_NODE_STATUS_DOWN || status("just-lost") != berthv1.NodeStatus_NODE_STATUS_DOWN {
		if time.Now().After(deadline) {
			t.Fatalf("statuses: long-gone %v, just-lost %v; want both down", status("long-gone"), status("just-lost"))
		}
		<-poll.C
	}
	if n, _ := c.Node("just-lost"); n.GetStatusSince().AsTime().Sub(now) < grace {
		t.Fatalf("just-lost went down %v after it was lost, before the grace of %v", n.GetStatusSince().AsTime().Sub(now), grace)
	}
	if got := status("fine"); got != berthv1.NodeStatus_NODE_STATUS_READY {
		t.Fatalf("a ready node became %v", got)
	}
}
