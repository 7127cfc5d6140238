package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/berthproject/berth/api/identity"
)

// chain parses every certificate of a PEM bundle.
func chain(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	certs, err := parseCerts(b)
	if err != nil || len(certs) == 0 {
		t.Fatalf("parse certificates: %v (%d found)", err, len(certs))
	}
	return certs
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestRotateCrossSigns(t *testing.T) {
	ctx := context.Background()
	a, store := openCA(t)
	oldRoot := parseCert(t, a.CACertPEM())
	oldDigest, oldGossip := a.Digest(), a.GossipKey()
	oldLeafPEM, _ := nodeCredentials(t, a, "node-1")
	tokenBefore := tokenFor(t, a)

	if err := a.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	newRoot := parseCert(t, a.CACertPEM())
	if newRoot.Equal(oldRoot) || a.Digest() == oldDigest {
		t.Fatal("Rotate kept the CA certificate")
	}
	if !a.Rolling() {
		t.Error("Rolling() = false after Rotate")
	}
	if bundle := chain(t, a.TrustBundle()); len(bundle) != 2 || !bundle[0].Equal(newRoot) || !bundle[1].Equal(oldRoot) {
		t.Errorf("trust bundle holds %d certificates, want the new CA then the old one", len(bundle))
	}

	leafPEM, _ := nodeCredentials(t, a, "node-1")
	certs := chain(t, leafPEM)
	if len(certs) != 2 {
		t.Fatalf("a leaf of the new CA comes with %d certificates, want it and the cross-signed intermediate", len(certs))
	}
	leaf, cross := certs[0], certs[1]
	if !cross.IsCA || cross.CheckSignatureFrom(oldRoot) != nil || !bytes.Equal(cross.RawSubjectPublicKeyInfo, newRoot.RawSubjectPublicKeyInfo) {
		t.Fatal("the intermediate is not the new CA's key signed by the old CA")
	}
	opts := func(roots *x509.CertPool, inter *x509.CertPool) x509.VerifyOptions {
		return x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "node-1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	}
	if _, err := leaf.Verify(opts(poolOf(oldRoot), poolOf(cross))); err != nil {
		t.Errorf("a new leaf does not verify with only the old root and the intermediate: %v", err)
	}
	if _, err := leaf.Verify(opts(poolOf(newRoot), nil)); err != nil {
		t.Errorf("a new leaf does not verify with only the new root: %v", err)
	}
	if _, err := leaf.Verify(opts(poolOf(oldRoot), nil)); err == nil {
		t.Error("a new leaf verifies with the old root and no intermediate; the test proves nothing")
	}
	oldLeaf := parseCert(t, oldLeafPEM)
	if _, err := oldLeaf.Verify(opts(poolOf(chain(t, a.TrustBundle())...), nil)); err != nil {
		t.Errorf("a leaf of the old CA does not verify with the trust bundle: %v", err)
	}
	if got := a.IssuerDigest(oldLeaf); got != oldDigest {
		t.Errorf("IssuerDigest(old leaf) = %q, want the old CA's", got)
	}
	if got := a.IssuerDigest(leaf); got != a.Digest() {
		t.Errorf("IssuerDigest(new leaf) = %q, want the new CA's", got)
	}

	// Gossip and join tokens carry on.
	if !bytes.Equal(a.GossipKey(), oldGossip) {
		t.Error("the gossip key changed with the CA")
	}
	if _, err := a.ValidateToken(ctx, tokenBefore.String()); err != nil {
		t.Errorf("a token from before the rotation is refused during the rollover: %v", err)
	}
	if tokenFor(t, a).CADigest != a.Digest() {
		t.Error("a new token does not pin the new CA")
	}

	// Another server reads the same CA, its keys sealed in the record.
	other, err := Open(ctx, store, testKEK, nil)
	if err != nil {
		t.Fatalf("Open after Rotate: %v", err)
	}
	if other.Digest() != a.Digest() || !bytes.Equal(other.TrustBundle(), a.TrustBundle()) || !bytes.Equal(other.GossipKey(), oldGossip) {
		t.Error("a server opening the rotated CA sees another")
	}

	if err := a.Rotate(ctx); !errors.Is(err, ErrRolling) {
		t.Errorf("Rotate during a rollover: %v, want ErrRolling", err)
	}
	if err := a.Finish(ctx); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if a.Rolling() || len(chain(t, a.TrustBundle())) != 1 {
		t.Error("the old CA is still trusted after Finish")
	}
	if after, _ := nodeCredentials(t, a, "node-1"); len(chain(t, after)) != 1 {
		t.Error("leaves still carry the intermediate after Finish")
	}
	if _, err := a.ValidateToken(ctx, tokenBefore.String()); err == nil {
		t.Error("a token pinning the retired CA is still accepted")
	}
	if err := a.Finish(ctx); !errors.Is(err, ErrNotRolling) {
		t.Errorf("Finish without a rollover: %v, want ErrNotRolling", err)
	}
	// The stale server follows.
	rec, _ := store.LoadCA(ctx)
	if changed, err := other.Reload(rec); err != nil || !changed || other.Rolling() || other.Digest() != a.Digest() {
		t.Errorf("Reload: changed %v, err %v, rolling %v; want the finished CA", changed, err, other.Rolling())
	}
	if changed, err := other.Reload(rec); err != nil || changed {
		t.Errorf("Reload of the same record: changed %v, err %v; want no change", changed, err)
	}
}

func TestRotateConflict(t *testing.T) {
	ctx := context.Background()
	a, store := openCA(t)
	b, err := Open(ctx, store, testKEK, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := a.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	// b has not seen a's rotation: its own must not overwrite it.
	if err := b.Rotate(ctx); !errors.Is(err, ErrChanged) {
		t.Errorf("a second rotation from a stale server: %v, want ErrChanged", err)
	}
	rec, _ := store.LoadCA(ctx)
	if got := identity.CADigest(chain(t, rec.GetCertificate())[0].Raw); got != a.Digest() {
		t.Error("the stale server's rotation replaced the stored CA")
	}
}

// TestRotatedTLS connects a server and a node through a rollover with the
// live TLS configurations: a node that still trusts only the old CA
// reaches a server whose certificate the new CA signed, a joining agent
// with a token from before checks the chain, and the deny-list refuses a
// revoked node.
func TestRotatedTLS(t *testing.T) {
	ctx := context.Background()
	a, _ := openCA(t)
	oldCA := a.CACertPEM()
	nodeCert, nodeKey := nodeCredentials(t, a, "node-1")
	node, err := identity.NewLive(nodeCert, nodeKey, oldCA)
	if err != nil {
		t.Fatalf("NewLive(node): %v", err)
	}
	tokenBefore := tokenFor(t, a)
	if err := a.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	serverCert, serverKey, err := a.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	server, err := identity.NewLive(serverCert, serverKey, a.TrustBundle())
	if err != nil {
		t.Fatalf("NewLive(server): %v", err)
	}
	revoked := map[string]bool{}
	srvCfg := server.ServerTLS(nil, func(serial string) bool { return revoked[serial] })

	r := handshake(t, srvCfg, node.ClientTLS(""))
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("old-CA node to new-CA server: client %v, server %v", r.clientErr, r.serverErr)
	}
	if who, ok := identity.FromConnectionState(r.server); !ok || who.ID != "node-1" {
		t.Errorf("server saw %v (%v), want node-1", who, ok)
	}
	if r := handshake(t, srvCfg, identity.BootstrapTLS(tokenBefore)); r.clientErr != nil {
		t.Errorf("a join with a token from before the rotation: %v", r.clientErr)
	}

	// The node renews: new certificate from the new CA, and the bundle.
	renewed, renewedKey := nodeCredentials(t, a, "node-1")
	if err := node.Update(renewed, renewedKey, a.TrustBundle()); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if r := handshake(t, srvCfg, node.ClientTLS("")); r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("renewed node: client %v, server %v", r.clientErr, r.serverErr)
	}

	revoked[identity.SerialHex(node.Leaf())] = true
	if r := handshake(t, srvCfg, node.ClientTLS("")); r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "revoked") {
		t.Errorf("a revoked certificate's handshake: server %v, want refused as revoked", r.serverErr)
	}
	other, otherKey := nodeCredentials(t, a, "node-2")
	otherLive, err := identity.NewLive(other, otherKey, a.TrustBundle())
	if err != nil {
		t.Fatalf("NewLive(node-2): %v", err)
	}
	if r := handshake(t, srvCfg, otherLive.ClientTLS("")); r.clientErr != nil || r.serverErr != nil {
		t.Errorf("another node's handshake: client %v, server %v", r.clientErr, r.serverErr)
	}

	// After Finish, a node that renewed reaches a server of the new CA
	// alone; the old-CA certificate no longer verifies.
	if err := a.Finish(ctx); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if err := server.UpdateTrust(a.TrustBundle()); err != nil {
		t.Fatalf("server UpdateTrust after Finish: %v", err)
	}
	if r := handshake(t, srvCfg, otherLive.ClientTLS("")); r.clientErr != nil || r.serverErr != nil {
		t.Errorf("a renewed node after Finish: client %v, server %v", r.clientErr, r.serverErr)
	}
	stale, err := identity.NewLive(nodeCert, nodeKey, oldCA)
	if err != nil {
		t.Fatalf("NewLive(stale): %v", err)
	}
	if r := handshake(t, srvCfg, stale.ClientTLS("")); r.clientErr == nil && r.serverErr == nil {
		t.Error("a node that never renewed still connects after Finish")
	}
}
