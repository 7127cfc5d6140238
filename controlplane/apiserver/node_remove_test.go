package apiserver

import (
	"context"
	"errors"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestRemoveNode: a connected node is removed only with force; removal
// deletes the record and the claims on its name and subnet, revokes its
// certificate, and says which tasks move and which volumes stay.
func TestRemoveNode(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	expires := timestamppb.Now()
	node := func(id, name string, st berthv1.NodeStatus) *berthv1.Node {
		return &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: name, Status: st, Subnet: "10.9." + id[1:] + ".0/24",
			CertificateSerial: "5e" + id, CertificateExpiresAt: expires, StatusSince: expires}
	}
	addNode(t, s, node("n1", "alpha", berthv1.NodeStatus_NODE_STATUS_DOWN))
	addNode(t, s, node("n2", "beta", berthv1.NodeStatus_NODE_STATUS_READY))
	var txn store.Txn
	txn.Claim(store.NodeNameKey("alpha"), "n1")
	txn.Create(store.SubnetKey("10.9.1.0/24"), &berthv1.Meta{Id: "n1"})
	tk := &berthv1.Task{Meta: &berthv1.Meta{Id: "t1"}, Namespace: "default", App: "shop", Service: "db", NodeId: "n1", Slot: 1,
		DesiredState: berthv1.TaskState_TASK_STATE_RUNNING, Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}}
	txn.Create(store.TaskKey("default", "shop", "db", "t1"), tk)
	txn.Create(store.VolumeKey("default", "shop_data.1"), &berthv1.Volume{Meta: &berthv1.Meta{Id: "v1"}, Namespace: "default", Name: "shop_data.1", NodeId: "n1"})
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		req  *berthv1.RemoveNodeRequest
		code codes.Code
		says string
	}{
		{"no node named", &berthv1.RemoveNodeRequest{}, codes.InvalidArgument, "berth node rm NAME"},
		{"unknown", &berthv1.RemoveNodeRequest{Node: "nope"}, codes.NotFound, "berth node ls"},
		{"connected", &berthv1.RemoveNodeRequest{Node: "beta"}, codes.FailedPrecondition, "--force"},
	} {
		_, err := s.RemoveNode(ctx, tc.req)
		if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.code, tc.says)
		}
	}
	if _, ok := s.cfg.Cache.Node("n2"); !ok {
		t.Fatalf("a refused removal removed the node")
	}

	resp, err := s.RemoveNode(ctx, &berthv1.RemoveNodeRequest{Node: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Tasks != 1 || len(resp.PinnedVolumes) != 1 || resp.PinnedVolumes[0] != "default/shop_data.1" {
		t.Errorf("response says %d tasks and volumes %v, want 1 and default/shop_data.1", resp.Tasks, resp.PinnedVolumes)
	}
	if _, ok := s.cfg.Cache.Node("n1"); ok {
		t.Errorf("the node is still in the cache")
	}
	for _, key := range []string{store.NodeNameKey("alpha"), store.SubnetKey("10.9.1.0/24")} {
		if _, err := s.cfg.Store.ClaimHolder(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("claim %s: %v, want it gone", key, err)
		}
	}
	rc := &berthv1.RevokedCertificate{}
	if err := s.cfg.Store.GetMessage(ctx, store.RevokedKey("5en1"), rc); err != nil {
		t.Fatalf("deny-list entry: %v", err)
	}
	if rc.Subject != "node/n1" || rc.GetRevokedAt() == nil || !rc.GetExpiresAt().AsTime().Equal(expires.AsTime()) {
		t.Errorf("deny-list entry = %v, want node/n1 with its expiry", rc)
	}
	if evs := nodeEvents(t, s); len(evs) != 1 || !strings.Contains(evs[0], "node alpha (n1) removed") || !strings.Contains(evs[0], "volumes default/shop_data.1 stay") {
		t.Errorf("events = %q, want one saying what was removed and what stays", evs)
	}

	if _, err := s.RemoveNode(ctx, &berthv1.RemoveNodeRequest{Node: "beta", Force: true}); err != nil {
		t.Fatalf("forced removal of a connected node: %v", err)
	}
	if _, ok := s.cfg.Cache.Node("n2"); ok {
		t.Errorf("the forced removal left the node")
	}
}
