package dispatcher

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// trustFor is what a node holding leaf must trust, and whether it must
// renew at once: when the current CA did not sign leaf, a rollover is
// under way and the node's certificate must be the new CA's before it
// ends.
func (d *Dispatcher) trustFor(leaf *x509.Certificate) *berthv1.TrustUpdate {
	a := d.cfg.Authority
	return &berthv1.TrustUpdate{
		TrustBundle: a.TrustBundle(),
		Renew:       leaf != nil && a.IssuerDigest(leaf) != a.Digest(),
	}
}

// TrustChanged tells every connected node the trust bundle after the
// cluster CA changed, asking those whose certificate the new CA did not
// sign to renew.
func (d *Dispatcher) TrustChanged() {
	d.mu.Lock()
	sessions := make([]*session, 0, len(d.sessions))
	for _, s := range d.sessions {
		sessions = append(sessions, s)
	}
	d.mu.Unlock()
	for _, s := range sessions {
		s.queueControl(&berthv1.ServerMessage{Message: &berthv1.ServerMessage_Trust{Trust: d.trustFor(s.certificate())}})
	}
}

// renew signs a node's new certificate request with its node id, records
// the certificate in the node, and answers on the session. The node keeps
// its id and its session; only its key and certificate change.
func (d *Dispatcher) renew(ctx context.Context, s *session, req *berthv1.CertificateRenewalRequest) {
	answer := func(r *berthv1.CertificateRenewal) {
		s.queueControl(&berthv1.ServerMessage{Message: &berthv1.ServerMessage_Certificate{Certificate: r}})
	}
	certPEM, err := d.cfg.Authority.SignNode(req.GetCsr(), s.nodeID)
	if err != nil {
		d.log.Warn("refused a certificate renewal", "id", s.nodeID, "err", err)
		answer(&berthv1.CertificateRenewal{Error: err.Error()})
		return
	}
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		answer(&berthv1.CertificateRenewal{Error: "the signed certificate does not parse: " + err.Error()})
		return
	}
	wctx, cancel := context.WithTimeout(fenced(ctx, s.term), 10*time.Second)
	defer cancel()
	if err := d.recordCertificate(wctx, s.nodeID, leaf); err != nil {
		// A certificate the node record does not name must not go out:
		// the record is what binds the node's name to its certificate.
		d.log.Warn("recording a renewed node certificate", "id", s.nodeID, "err", err)
		answer(&berthv1.CertificateRenewal{Error: "the control plane could not record the certificate; the node asks again later"})
		return
	}
	s.setCertificate(leaf)
	d.log.Info("renewed a node certificate", "id", s.nodeID, "serial", identity.SerialHex(leaf), "expires", leaf.NotAfter)
	d.cfg.Store.Record(ctx, d.log, "node", s.nodeID, "certificate", "node certificate renewed until "+leaf.NotAfter.UTC().Format(time.RFC3339))
	answer(&berthv1.CertificateRenewal{Certificate: certPEM, TrustBundle: d.cfg.Authority.TrustBundle()})
}

// recordCertificate writes leaf's serial, expiry and CA into node id.
func (d *Dispatcher) recordCertificate(ctx context.Context, id string, leaf *x509.Certificate) error {
	n, ok := d.cfg.Cache.Node(id)
	if !ok {
		return errors.New("the node is not registered")
	}
	serial, ca := identity.SerialHex(leaf), d.cfg.Authority.IssuerDigest(leaf)
	_, err := d.cfg.Store.Update(ctx, []store.Change{{Key: store.NodeKey(id), Current: n, Apply: func(o store.Object) bool {
		n := o.(*berthv1.Node)
		if n.CertificateSerial == serial && n.CertificateCa == ca {
			return false
		}
		n.CertificateSerial, n.CertificateExpiresAt, n.CertificateCa = serial, timestamppb.New(leaf.NotAfter), ca
		return true
	}}})
	return err
}

// noteSessionCertificate records, when it is not yet, which CA signed the
// certificate a node connected with, so that `berth ca rotate --finish`
// knows which nodes still hold a certificate of the previous CA.
func (d *Dispatcher) noteSessionCertificate(ctx context.Context, id string, leaf *x509.Certificate) {
	if leaf == nil {
		return
	}
	ca := d.cfg.Authority.IssuerDigest(leaf)
	n, ok := d.cfg.Cache.Node(id)
	if !ok || n.CertificateCa == ca {
		return
	}
	_, err := d.cfg.Store.Update(ctx, []store.Change{{Key: store.NodeKey(id), Current: n, Apply: func(o store.Object) bool {
		n := o.(*berthv1.Node)
		if n.CertificateCa == ca {
			return false
		}
		n.CertificateCa = ca
		return true
	}}})
	if err != nil {
		d.log.Warn("recording the CA of a node's certificate", "id", id, "err", err)
	}
}
