package dispatcher

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/api/nodelabels"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// joinAttempts bounds the retries of a join whose transaction lost a race
// for the token's last uses.
const joinAttempts = 5

// maxNodeNameLength bounds a node's name, which is part of a store key and
// of every event about the node.
const maxNodeNameLength = 253

// Join admits a new node. It checks the join token, signs the node's
// certificate for a new node id, and creates the node's record with the
// name, hostname and labels the agent joined with, which stay fixed (see
// register). The record, the claim on the name and one use of a limited
// token are written in one transaction, so a name is never bound twice and
// two joins never both take a token's last use.
//
// A name already held by a node, connected or not, is refused: the same
// name from another agent is not the same machine, and giving it the old
// node's id would let a join token take over that node. `berth node rm`
// frees the name.
func (d *Dispatcher) Join(ctx context.Context, req *berthv1.JoinRequest) (*berthv1.JoinResponse, error) {
	if err := d.refuseRevokedPeer(ctx); err != nil {
		return nil, err
	}
	rec, err := d.cfg.Authority.ValidateToken(ctx, req.Token)
	if err != nil {
		d.log.Warn("refused a join", "node", req.NodeName, "err", err)
		return nil, tokenError(err)
	}
	if err := checkNodeName(req.NodeName); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := d.nameFree(ctx, req.NodeName); err != nil {
		return nil, err
	}
	id := store.NewID()
	certPEM, err := d.cfg.Authority.SignNode(req.Csr, id)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signing the node certificate: %v", err)
	}
	cert, err := parseCertificate(certPEM)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading the node certificate just signed: %v", err)
	}
	node := joinedNode(id, req, cert, time.Now())
	for attempt := 0; ; attempt++ {
		var txn store.Txn
		txn.Claim(store.NodeNameKey(req.NodeName), id)
		txn.Create(store.NodeKey(id), node)
		if rec.GetMaxUses() > 0 {
			if err := d.takeTokenUse(ctx, &txn, rec.GetId()); err != nil {
				d.log.Warn("refused a join", "node", req.NodeName, "err", err)
				return nil, err
			}
		}
		_, err := d.cfg.Store.Commit(ctx, &txn)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, status.Errorf(codes.Unavailable, "admitting node %s: %v; try again", req.NodeName, err)
		}
		// Another join took the name, or a use of the token, meanwhile.
		if err := d.nameFree(ctx, req.NodeName); err != nil {
			return nil, err
		}
		if attempt+1 == joinAttempts {
			return nil, status.Errorf(codes.Aborted, "admitting node %s: other joins kept taking the token's uses at the same time; try again", req.NodeName)
		}
	}
	d.log.Info("node joined", "node", req.NodeName, "id", id, "certificate", node.CertificateSerial)
	d.cfg.Store.Record(ctx, d.log, "node", id, "join", "node "+req.NodeName+" joined")
	return &berthv1.JoinResponse{NodeId: id, Certificate: certPEM, CaCertificate: d.cfg.Authority.CACertPEM()}, nil
}

// joinedNode is the record of a node that joined: of no status until its
// agent connects (node health judges only nodes that were ready, so a slow
// first start is not reported as a node going down).
func joinedNode(id string, req *berthv1.JoinRequest, cert *x509.Certificate, now time.Time) *berthv1.Node {
	ts := timestamppb.New(now)
	n := &berthv1.Node{
		Meta:                 &berthv1.Meta{Id: id, CreatedAt: ts, UpdatedAt: ts},
		Name:                 req.NodeName,
		Hostname:             req.Hostname,
		AgentLabels:          maps.Clone(req.Labels),
		Availability:         berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		StatusMessage:        "joined; its agent has not connected yet",
		StatusSince:          ts,
		CertificateSerial:    identity.SerialHex(cert),
		CertificateExpiresAt: timestamppb.New(cert.NotAfter),
	}
	nodelabels.Merge(n)
	return n
}

// takeTokenUse adds to txn one use of limited join token id, guarded by
// the record's revision: of two joins racing for the last use, one
// commits and the other reads the record again and is refused.
func (d *Dispatcher) takeTokenUse(ctx context.Context, txn *store.Txn, id string) error {
	cur := &berthv1.JoinTokenRecord{}
	version, err := d.cfg.Store.GetMessageVersion(ctx, store.TokenKey(id), cur)
	if errors.Is(err, store.ErrNotFound) {
		return status.Error(codes.PermissionDenied, "join token was revoked meanwhile; run `berth join-token` on a server for the current one")
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading the join token: %v; try again", err)
	}
	next, err := ca.TakeUse(cur)
	if err != nil {
		return tokenError(err)
	}
	txn.Guard(store.TokenKey(id), version)
	txn.Put(store.TokenKey(id), next)
	return nil
}

// tokenError is the gRPC error of a join token the CA refused.
func tokenError(err error) error {
	if errors.Is(err, ca.ErrTokenInvalid) || errors.Is(err, ca.ErrTokenExpired) || errors.Is(err, ca.ErrTokenUsedUp) {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return status.Errorf(codes.Unavailable, "checking the join token: %v; try again", err)
}

// nameFree fails with AlreadyExists when a node holds name: one in the
// cache (nodes that joined before names were claimed have no claim), or
// the holder of its claim (the cache may lag a join on another server).
func (d *Dispatcher) nameFree(ctx context.Context, name string) error {
	for _, n := range d.cfg.Cache.Nodes() {
		if n.Name == name {
			return nameTaken(name, n)
		}
	}
	holder, err := d.cfg.Store.ClaimHolder(ctx, store.NodeNameKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "checking node name %q: %v; try again", name, err)
	}
	n := &berthv1.Node{}
	if err := d.cfg.Store.Get(ctx, store.NodeKey(holder), n); err != nil {
		n = &berthv1.Node{Meta: &berthv1.Meta{Id: holder}, Name: name}
	}
	return nameTaken(name, n)
}

func nameTaken(name string, n *berthv1.Node) error {
	since := "an earlier join"
	if at := n.GetMeta().GetCreatedAt(); at != nil {
		since = at.AsTime().UTC().Format(time.RFC3339)
	}
	return status.Errorf(codes.AlreadyExists,
		"node name %q is held by node %s (%s) since %s: a name stays bound to the certificate that joined with it. "+
			"If that machine is gone for good, run `berth node rm %s` to free the name; otherwise start this agent with another --name",
		name, n.GetMeta().GetId(), statusWord(n.Status), since, name)
}

func statusWord(s berthv1.NodeStatus) string {
	switch s {
	case berthv1.NodeStatus_NODE_STATUS_READY:
		return "connected"
	case berthv1.NodeStatus_NODE_STATUS_UNREACHABLE:
		return "unreachable"
	case berthv1.NodeStatus_NODE_STATUS_DOWN:
		return "down"
	}
	return "not connected"
}

// checkNodeName accepts what a hostname may be, which is what an agent
// is named by default.
func checkNodeName(name string) error {
	if name == "" {
		return errors.New("node name is empty: start the agent with --name")
	}
	if len(name) > maxNodeNameLength {
		return fmt.Errorf("node name %.20q... is %d characters long; use at most %d", name, len(name), maxNodeNameLength)
	}
	for _, c := range name {
		if !(c == '-' || c == '.' || c == '_' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return fmt.Errorf("node name %q has %q: use letters, digits, '-', '.' and '_'", name, c)
		}
	}
	return nil
}

func parseCertificate(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// refuseRevokedPeer refuses a caller whose certificate is on the
// deny-list of revoked certificates (a removed node's). The TLS handshake
// checks the list too; this keeps the dispatcher safe on its own.
func (d *Dispatcher) refuseRevokedPeer(ctx context.Context) error {
	cert, ok := identity.PeerCertificate(ctx)
	if !ok {
		return nil
	}
	return d.refuseRevoked(ctx, cert)
}

// refuseRevoked fails with PermissionDenied when cert was revoked.
func (d *Dispatcher) refuseRevoked(ctx context.Context, cert *x509.Certificate) error {
	serial := identity.SerialHex(cert)
	rc := &berthv1.RevokedCertificate{}
	err := d.cfg.Store.GetMessage(ctx, store.RevokedKey(serial), rc)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "checking certificate %s against the revoked ones: %v; try again", serial, err)
	}
	d.log.Warn("refused a revoked certificate", "serial", serial, "subject", rc.GetSubject())
	return status.Errorf(codes.PermissionDenied,
		"certificate %s (%s) was revoked at %s (`berth node rm`): this agent is no longer a node of the cluster; delete its data directory's pki folder and join again with a token",
		serial, rc.GetSubject(), rc.GetRevokedAt().AsTime().UTC().Format(time.RFC3339))
}
