package apiserver

import (
	"context"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// TestRotateCA starts a rollover, is refused to finish it while a node
// holds a certificate of the old CA, and finishes once the node renewed.
func TestRotateCA(t *testing.T) {
	ctx := context.Background()
	c := newBuildCluster(t)
	s := c.srv
	s.cfg.Authority = c.auth
	oldCA := c.auth.Digest()
	addNode(t, s, &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Name: "alpha", CertificateCa: oldCA})

	_, err := s.RotateCA(ctx, &berthv1.RotateCARequest{Finish: true})
	wantStatus(t, "finish without a rollover", err, codes.FailedPrecondition, "berth ca rotate")

	resp, err := s.RotateCA(ctx, &berthv1.RotateCARequest{})
	if err != nil {
		t.Fatalf("RotateCA: %v", err)
	}
	if c.auth.Digest() == oldCA || len(resp.GetPendingNodes()) != 1 || resp.GetPendingNodes()[0] != "alpha" {
		t.Fatalf("RotateCA: CA %s (was %s), pending %v; want a new CA and alpha pending", c.auth.Digest(), oldCA, resp.GetPendingNodes())
	}
	_, err = s.RotateCA(ctx, &berthv1.RotateCARequest{})
	wantStatus(t, "rotate during a rollover", err, codes.FailedPrecondition, "--finish")
	_, err = s.RotateCA(ctx, &berthv1.RotateCARequest{Finish: true})
	wantStatus(t, "finish while alpha holds an old certificate", err, codes.FailedPrecondition, "alpha", "--force")
	if !c.auth.Rolling() {
		t.Fatal("a refused finish ended the rollover")
	}

	// alpha renews: its record names the new CA.
	n, _ := s.cfg.Cache.Node("n1")
	next := proto.Clone(n).(*berthv1.Node)
	next.CertificateCa = c.auth.Digest()
	var txn store.Txn
	txn.Update(store.NodeKey("n1"), next)
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	resp, err = s.RotateCA(ctx, &berthv1.RotateCARequest{Finish: true})
	if err != nil || c.auth.Rolling() || len(resp.GetPendingNodes()) != 0 {
		t.Fatalf("finish after the renewal: %v, rolling %v, pending %v", err, c.auth.Rolling(), resp.GetPendingNodes())
	}
}
