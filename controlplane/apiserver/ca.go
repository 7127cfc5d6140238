package apiserver

import (
	"context"
	"errors"
	"sort"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/ca"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RotateCA starts a CA rollover, or finishes one (req.Finish). Starting
// makes a new CA cross-signed by the current one; every server then
// renews its certificate and rewrites its admin config, and asks its
// connected nodes to renew. Finishing drops the previous CA; it is
// refused while a node's certificate is still the previous CA's (listed
// in the error), unless req.Force: such a node must then join again.
func (s *Server) RotateCA(ctx context.Context, req *berthv1.RotateCARequest) (*berthv1.RotateCAResponse, error) {
	a := s.cfg.Authority
	if a == nil {
		return nil, status.Error(codes.Unavailable, "this server has no cluster CA")
	}
	var err error
	if req.GetFinish() {
		pending := s.nodesOfPreviousCA()
		if len(pending) > 0 && !req.GetForce() {
			return nil, status.Errorf(codes.FailedPrecondition,
				"%d node(s) still hold a certificate of the previous CA: %v; wait until they renew (they do within a heartbeat when connected; start the agents that are down), or pass --force and join those nodes again", len(pending), pending)
		}
		err = a.Finish(ctx)
	} else {
		err = a.Rotate(ctx)
	}
	switch {
	case errors.Is(err, ca.ErrRolling), errors.Is(err, ca.ErrNotRolling):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ca.ErrChanged):
		return nil, status.Error(codes.Aborted, err.Error())
	case err != nil:
		return nil, storeError(err)
	}
	op := "started a CA rollover"
	if req.GetFinish() {
		op = "finished the CA rollover"
	}
	s.log.Info(op, "ca", a.Digest())
	s.cfg.Store.Record(ctx, s.log, "cluster", "ca", "rotate", op+"; current CA "+a.Digest())
	return &berthv1.RotateCAResponse{
		CaCertificate: a.CACertPEM(),
		TrustBundle:   a.TrustBundle(),
		PendingNodes:  s.nodesOfPreviousCA(),
	}, nil
}

// nodesOfPreviousCA names the nodes whose certificate, as their record
// says, the current CA did not sign.
func (s *Server) nodesOfPreviousCA() []string {
	current := s.cfg.Authority.Digest()
	var out []string
	for _, n := range s.cfg.Cache.Nodes() {
		if n.GetCertificateCa() != current {
			out = append(out, n.GetName())
		}
	}
	sort.Strings(out)
	return out
}
