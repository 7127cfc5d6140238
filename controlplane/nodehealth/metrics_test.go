package nodehealth

import (
	"context"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"github.com/berthproject/berth/internal/metrics/metricstest"
)

func TestCollectorCountsNodesByStatus(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	c := storetest.NewCache(t, s)
	var txn store.Txn
	for id, st := range map[string]berthv1.NodeStatus{
		"n1": berthv1.NodeStatus_NODE_STATUS_READY,
		"n2": berthv1.NodeStatus_NODE_STATUS_READY,
		"n3": berthv1.NodeStatus_NODE_STATUS_DOWN,
	} {
		txn.Put(store.NodeKey(id), &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: id, Status: st})
	}
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	got := metricstest.Values(t, Collector(c))
	want := map[string]float64{
		`berth_nodes{status="ready"}`:       2,
		`berth_nodes{status="unreachable"}`: 0,
		`berth_nodes{status="down"}`:        1,
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if n, ok := got[k]; !ok || n != v {
			t.Errorf("%s = %v (reported: %v), want %v", k, n, ok, v)
		}
	}
}
