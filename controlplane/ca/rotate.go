package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrRolling is what Rotate wraps while a rollover is under way, and
// ErrNotRolling what Finish wraps when none is.
var (
	ErrRolling    = errors.New("a CA rollover is under way")
	ErrNotRolling = errors.New("no CA rollover is under way")
)

// ErrChanged is what SwapCA wraps when the stored CA is no longer the one
// the caller read: another server rotated it meanwhile.
var ErrChanged = errors.New("the cluster CA changed meanwhile")

// Rotate starts a CA rollover: it makes a new CA key and certificate, has
// the current CA certify the new key (the cross-signed intermediate), and
// stores the new CA with the previous one still trusted. From then on the
// authority issues certificates from the new CA, each carrying the
// intermediate so that peers that trust only the previous CA verify it;
// servers and nodes trust both CAs until Finish. The join token and gossip
// keys are kept as they are, so tokens and gossip carry on.
//
// The previous CA's key is dropped at once: nothing is signed with it
// again.
func (a *Authority) Rotate(ctx context.Context) error {
	cur := a.state()
	if len(cur.previous) > 0 {
		return fmt.Errorf("%w: finish it first with `berth ca rotate --finish`", ErrRolling)
	}
	now := a.clock()
	// A name of its own: chains are built by name and key id.
	key, der, err := newCAKeyAndCert(fmt.Sprintf("berth cluster CA %s %s", cur.clusterID, now.UTC().Format("20060102T150405Z")), now)
	if err != nil {
		return err
	}
	fresh, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	// The intermediate: the new CA's name and key, certified by the
	// previous CA, valid no longer than it. Only leaves hang below it.
	cross := x509.Certificate{
		RawSubject: fresh.RawSubject, SubjectKeyId: fresh.SubjectKeyId,
		NotBefore: fresh.NotBefore, NotAfter: fresh.NotAfter, KeyUsage: fresh.KeyUsage,
		BasicConstraintsValid: true, IsCA: true, MaxPathLen: 0, MaxPathLenZero: true,
	}
	cross.SerialNumber, err = newSerial()
	if err != nil {
		return err
	}
	if cross.NotAfter.After(cur.cert.NotAfter) {
		cross.NotAfter = cur.cert.NotAfter
	}
	crossDER, err := x509.CreateCertificate(rand.Reader, &cross, cur.cert, &key.PublicKey, cur.key)
	if err != nil {
		return fmt.Errorf("cross-sign the new cluster CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode cluster CA key: %w", err)
	}
	sealed, err := SealKey(a.kek, cur.clusterID, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return err
	}
	clusterKeys, err := a.kek.Seal(seal.KindCAKey, clusterKeysName(cur.clusterID), append(append([]byte(nil), cur.tokenKey...), cur.gossipKey...))
	if err != nil {
		return fmt.Errorf("sealing the cluster keys: %w", err)
	}
	next := &berthv1.ClusterCA{
		Certificate:          pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		SealedKey:            sealed,
		ClusterId:            cur.clusterID,
		CrossSigned:          pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crossDER}),
		PreviousCertificates: cur.certPEM,
		SealedClusterKeys:    clusterKeys,
		RotatedAt:            timestamppb.New(now),
	}
	return a.swap(ctx, cur, next)
}

// Finish ends a rollover: the previous CA is no longer trusted, and
// certificates stop carrying the intermediate. Certificates the previous
// CA signed stop working; the caller checks first that none is in use.
func (a *Authority) Finish(ctx context.Context) error {
	cur := a.state()
	if len(cur.previous) == 0 {
		return fmt.Errorf("%w: start one with `berth ca rotate`", ErrNotRolling)
	}
	next := proto.Clone(cur.rec).(*berthv1.ClusterCA)
	next.CrossSigned, next.PreviousCertificates = nil, nil
	return a.swap(ctx, cur, next)
}

// swap stores next in place of cur's record and makes it the authority's.
func (a *Authority) swap(ctx context.Context, cur *caState, next *berthv1.ClusterCA) error {
	st, err := fromRecord(next, a.kek)
	if err != nil {
		return err
	}
	if err := a.p.SwapCA(ctx, cur.rec, next); err != nil {
		return err
	}
	a.st.CompareAndSwap(cur, st)
	return nil
}
