// Package ca is the cluster certificate authority that every Berth server
// shares: it is made by the first server to start, kept in etcd as a
// berthv1.ClusterCA, and used to issue server, admin and node certificates
// and to hand out and check join tokens.
//
// The CA key is ECDSA P-256 and the CA certificate lasts ten years. The
// ClusterCA record holds the certificate as PEM and the PKCS #8 key as PEM
// sealed with the cluster's key-encryption key (sealed_key), so a copy of
// etcd alone does not reveal it.
package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync/atomic"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/seal"
	"google.golang.org/protobuf/proto"
)

// ErrExists is what Persistence.CreateCA wraps when a cluster CA is already
// stored, typically because another server created one first.
var ErrExists = errors.New("cluster CA already exists")

// Persistence stores the cluster CA and the join token records. The
// control plane's store implements it on etcd.
type Persistence interface {
	// LoadCA returns the stored CA, or (nil, nil) when there is none.
	LoadCA(ctx context.Context) (*berthv1.ClusterCA, error)
	// CreateCA stores the CA unless one exists, in which case it fails with
	// an error wrapping ErrExists.
	CreateCA(ctx context.Context, ca *berthv1.ClusterCA) error
	// SwapCA replaces the stored CA old with next, or fails with an error
	// wrapping ErrChanged when the stored one is no longer old.
	SwapCA(ctx context.Context, old, next *berthv1.ClusterCA) error
	PutToken(ctx context.Context, rec *berthv1.JoinTokenRecord) error
	ListTokens(ctx context.Context) ([]*berthv1.JoinTokenRecord, error)
	// DeleteToken removes a token record; removing a missing one is not an
	// error.
	DeleteToken(ctx context.Context, id string) error
}

// Certificate lifetimes. Leaf certificates start a few minutes in the past
// so that a peer whose clock lags slightly still accepts them.
const (
	caLifetime = 10 * 365 * 24 * time.Hour
	// DefaultLeafLifetime is how long node, server and admin certificates
	// last; their holders renew them at two thirds of it.
	DefaultLeafLifetime = 365 * 24 * time.Hour
	backdate            = 5 * time.Minute
)

// Authority is an opened cluster CA. It is safe for concurrent use. A CA
// rotation swaps its state whole (Rotate on this server, Reload on the
// others), so every method sees one CA or the other, never a mix.
type Authority struct {
	p        Persistence
	clock    func() time.Time
	kek      *seal.Key
	lifetime time.Duration
	st       atomic.Pointer[caState]
}

// caState is one version of the stored CA, opened.
type caState struct {
	// rec is the record it was read from, to guard a rotation's write.
	rec     *berthv1.ClusterCA
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	// crossPEM is the current CA certified by the previous one, during a
	// rollover; leaves carry it after their own certificate.
	crossPEM []byte
	// previous are the CA certificates still trusted during a rollover.
	previous        []*x509.Certificate
	previousDigests []string
	bundlePEM       []byte
	clusterID       string
	digest          string
	// tokenKey derives join token secrets from token ids; see JoinToken.
	tokenKey []byte
	// gossipKey encrypts the gossip among servers and agents.
	gossipKey []byte
}

// Option configures an Authority.
type Option func(*Authority)

// WithLeafLifetime makes the certificates the authority issues last d
// instead of DefaultLeafLifetime; tests shorten it to see renewals.
func WithLeafLifetime(d time.Duration) Option {
	return func(a *Authority) {
		if d > 0 {
			a.lifetime = d
		}
	}
}

// Open loads the cluster CA from p, or makes and stores one when there is
// none, its key sealed with kek. When several servers start at once, the
// one whose CreateCA wins provides the CA and the others load it. clock
// may be nil for time.Now.
func Open(ctx context.Context, p Persistence, kek *seal.Key, clock func() time.Time, opts ...Option) (*Authority, error) {
	if clock == nil {
		clock = time.Now
	}
	stored, err := p.LoadCA(ctx)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	if stored == nil {
		fresh, err := newClusterCA(clock(), kek)
		if err != nil {
			return nil, err
		}
		switch err := p.CreateCA(ctx, fresh); {
		case err == nil:
			slog.Info("created cluster CA", "cluster_id", fresh.GetClusterId())
			stored = fresh
		case errors.Is(err, ErrExists):
			if stored, err = p.LoadCA(ctx); err != nil {
				return nil, fmt.Errorf("load cluster CA created by another server: %w", err)
			}
			if stored == nil {
				return nil, errors.New("cluster CA creation reported an existing CA, but none could be loaded; check the store")
			}
		default:
			return nil, fmt.Errorf("store new cluster CA: %w", err)
		}
	}
	st, err := fromRecord(stored, kek)
	if err != nil {
		return nil, err
	}
	a := &Authority{p: p, clock: clock, kek: kek, lifetime: DefaultLeafLifetime}
	for _, o := range opts {
		o(a)
	}
	a.st.Store(st)
	return a, nil
}

func (a *Authority) state() *caState { return a.st.Load() }

// Reload opens rec, a CA record another server stored (a rotation), and
// makes it the authority's CA. It reports whether the CA changed.
func (a *Authority) Reload(rec *berthv1.ClusterCA) (bool, error) {
	if proto.Equal(rec, a.state().rec) {
		return false, nil
	}
	st, err := fromRecord(rec, a.kek)
	if err != nil {
		return false, err
	}
	if st.clusterID != a.state().clusterID {
		return false, fmt.Errorf("the stored CA belongs to cluster %s, this server to %s; keep one cluster per etcd", st.clusterID, a.state().clusterID)
	}
	a.st.Store(st)
	return true, nil
}

// CACertPEM is the current CA certificate, PEM encoded: what issues
// certificates now.
func (a *Authority) CACertPEM() []byte { return append([]byte(nil), a.state().certPEM...) }

// TrustBundle is every CA certificate peers must trust, PEM encoded: the
// current CA first, then, during a rollover, the previous one.
func (a *Authority) TrustBundle() []byte { return append([]byte(nil), a.state().bundlePEM...) }

// Rolling reports whether a rollover is under way: a previous CA is still
// trusted.
func (a *Authority) Rolling() bool { return len(a.state().previous) > 0 }

// GossipKey is the AES-256 key that encrypts gossip. Every server derives
// the same key from the CA key; agents receive it over their mTLS session.
func (a *Authority) GossipKey() []byte { return append([]byte(nil), a.state().gossipKey...) }

// NotAfter is when the CA certificate in use expires.
func (a *Authority) NotAfter() time.Time { return a.state().cert.NotAfter }

// ClusterID names the cluster; it was made with the CA.
func (a *Authority) ClusterID() string { return a.state().clusterID }

// Digest is identity.CADigest of the current CA certificate, as join
// tokens carry it.
func (a *Authority) Digest() string { return a.state().digest }

// IssuerDigest is the CADigest of the trusted CA (current or previous)
// whose key signed c, or "" when none did.
func (a *Authority) IssuerDigest(c *x509.Certificate) string {
	st := a.state()
	if c.CheckSignatureFrom(st.cert) == nil {
		return st.digest
	}
	for i, p := range st.previous {
		if c.CheckSignatureFrom(p) == nil {
			return st.previousDigests[i]
		}
	}
	return ""
}

// newClusterCA makes a self-signed CA and a cluster id, its key sealed
// with kek.
func newClusterCA(now time.Time, kek *seal.Key) (*berthv1.ClusterCA, error) {
	idBytes := make([]byte, 8)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, fmt.Errorf("generate cluster id: %w", err)
	}
	clusterID := hex.EncodeToString(idBytes)
	key, der, err := newCAKeyAndCert("berth cluster CA "+clusterID, now)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode cluster CA key: %w", err)
	}
	sealed, err := SealKey(kek, clusterID, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return nil, err
	}
	return &berthv1.ClusterCA{
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		SealedKey:   sealed,
		ClusterId:   clusterID,
	}, nil
}

// SealKey seals the CA's key (PEM) of cluster clusterID with kek, as
// ClusterCA.sealed_key holds it.
func SealKey(kek *seal.Key, clusterID string, keyPEM []byte) ([]byte, error) {
	sealed, err := kek.Seal(seal.KindCAKey, clusterID, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("sealing the cluster CA key: %w", err)
	}
	return sealed, nil
}

// keyPEM returns the CA's key as PEM: unsealed with kek, or as a record
// from before the key-encryption key holds it, in the clear.
func keyPEM(rec *berthv1.ClusterCA, kek *seal.Key) ([]byte, error) {
	if len(rec.GetSealedKey()) == 0 {
		return rec.GetKey(), nil
	}
	if kek == nil {
		return nil, errors.New("the cluster CA key is sealed and this server has no key-encryption key")
	}
	plain, err := kek.Open(seal.KindCAKey, rec.GetClusterId(), rec.GetSealedKey())
	if err != nil {
		return nil, fmt.Errorf("opening the cluster CA key: %w; start the server with the cluster's key-encryption key (--kek-file or --unlock-key)", err)
	}
	return plain, nil
}

// LegacyCredentialKey is the key that servers from before the
// key-encryption key sealed registry credentials with, derived from the
// CA key of rec (a record from then, with the key in the clear). Only the
// migration to the key-encryption key uses it.
func LegacyCredentialKey(rec *berthv1.ClusterCA) ([]byte, error) {
	block, _ := pem.Decode(rec.GetKey())
	if block == nil {
		return nil, errors.New("read cluster CA key: no PEM block; the cluster CA record in the store is damaged; restore it from a backup")
	}
	key, err := hkdf.Key(sha256.New, block.Bytes, nil, "berth registry credential key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive registry credential key: %w", err)
	}
	return key, nil
}

// fromRecord parses a stored CA, its key unsealed with kek, and checks
// that its key and certificate belong together, so that a damaged record
// fails at start, not at the first join.
func fromRecord(rec *berthv1.ClusterCA, kek *seal.Key) (*caState, error) {
	const fix = "the cluster CA record in the store is damaged; restore it from a backup"
	certBlock, _ := pem.Decode(rec.GetCertificate())
	if certBlock == nil || certBlock.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read cluster CA certificate: no PEM CERTIFICATE block; %s", fix)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse cluster CA certificate: %w; %s", err, fix)
	}
	plainKey, err := keyPEM(rec, kek)
	if err != nil {
		return nil, err
	}
	keyBlock, _ := pem.Decode(plainKey)
	if keyBlock == nil {
		return nil, fmt.Errorf("read cluster CA key: no PEM block; %s", fix)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse cluster CA key: %w; %s", err, fix)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("cluster CA key is a %T, expected ECDSA; %s", parsed, fix)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("cluster CA key does not match its certificate; %s", fix)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("cluster CA certificate is not a CA certificate; %s", fix)
	}
	if rec.GetClusterId() == "" {
		return nil, fmt.Errorf("cluster CA record has no cluster id; %s", fix)
	}
	tokenKey, gossipKey, err := clusterKeys(rec, kek, keyBlock.Bytes)
	if err != nil {
		return nil, err
	}
	st := &caState{
		rec:       proto.Clone(rec).(*berthv1.ClusterCA),
		cert:      cert,
		certPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:       key,
		clusterID: rec.GetClusterId(),
		digest:    identity.CADigest(cert.Raw),
		tokenKey:  tokenKey,
		gossipKey: gossipKey,
	}
	st.bundlePEM = append([]byte(nil), st.certPEM...)
	previous, err := parseCerts(rec.GetPreviousCertificates())
	if err != nil {
		return nil, fmt.Errorf("previous cluster CA certificates: %w; %s", err, fix)
	}
	for _, p := range previous {
		st.previous = append(st.previous, p)
		st.previousDigests = append(st.previousDigests, identity.CADigest(p.Raw))
		st.bundlePEM = append(st.bundlePEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Raw})...)
	}
	if len(rec.GetCrossSigned()) > 0 {
		cross, err := parseCerts(rec.GetCrossSigned())
		if err != nil || len(cross) != 1 || !cross[0].PublicKey.(*ecdsa.PublicKey).Equal(cert.PublicKey) {
			return nil, fmt.Errorf("the cross-signed cluster CA certificate is not the current CA's key; %s", fix)
		}
		st.crossPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cross[0].Raw})
	}
	return st, nil
}

// clusterKeys returns the join token and gossip keys: those a rotation
// kept sealed in the record, or, before any rotation, the ones derived
// from the CA key (keyDER).
func clusterKeys(rec *berthv1.ClusterCA, kek *seal.Key, keyDER []byte) (tokenKey, gossipKey []byte, err error) {
	if sealed := rec.GetSealedClusterKeys(); len(sealed) > 0 {
		if kek == nil {
			return nil, nil, errors.New("the cluster keys are sealed and this server has no key-encryption key")
		}
		plain, err := kek.Open(seal.KindCAKey, clusterKeysName(rec.GetClusterId()), sealed)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the cluster keys: %w; start the server with the cluster's key-encryption key (--kek-file or --unlock-key)", err)
		}
		if len(plain) != 64 {
			return nil, nil, errors.New("the sealed cluster keys are not 64 bytes; the cluster CA record in the store is damaged; restore it from a backup")
		}
		return plain[:32], plain[32:], nil
	}
	// Derived from the CA key so that every server derives the same
	// secrets without storing them, and a secret is only as exposed as
	// the CA key itself.
	if tokenKey, err = hkdf.Key(sha256.New, keyDER, nil, "berth join token secret v1", 32); err != nil {
		return nil, nil, fmt.Errorf("derive join token key: %w", err)
	}
	if gossipKey, err = hkdf.Key(sha256.New, keyDER, nil, "berth gossip key v1", 32); err != nil {
		return nil, nil, fmt.Errorf("derive gossip key: %w", err)
	}
	return tokenKey, gossipKey, nil
}

// clusterKeysName is the name the cluster keys are sealed under.
func clusterKeysName(clusterID string) string { return clusterID + "/cluster-keys" }

// parseCerts reads every PEM CERTIFICATE block of b.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func newSerial() (*big.Int, error) {
	// 128 random bits: serials must be unique per CA without coordination
	// between servers.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	return serial, nil
}

// newCAKeyAndCert makes a CA key and its self-signed certificate (DER)
// named cn, valid for caLifetime from now.
func newCAKeyAndCert(cn string, now time.Time) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate cluster CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"berth"}, CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// One intermediate may hang below: the next CA, cross-signed by
		// this one during a rotation (see Rotate). No one else holds a
		// CA key, so no other intermediate exists.
		MaxPathLen: 1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create cluster CA certificate: %w", err)
	}
	return key, der, nil
}
