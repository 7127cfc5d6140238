package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// pullGrantContext is signed before every grant, so a grant signature can
// never be mistaken for a signature of anything else the CA key signs
// (certificates are DER and cannot start with it).
const pullGrantContext = "berth pull grant v1\x00"

// ErrPullGrant marks a pull grant that does not let the caller fetch what
// it asked for.
var ErrPullGrant = errors.New("pull grant refused")

// SignPullGrant returns a marshalled SignedPullGrant: the cluster CA (key)
// says that node nodeID may fetch manifest digest dgst, and what it
// references, from its peers.
func SignPullGrant(key crypto.Signer, nodeID, dgst string, now time.Time) ([]byte, error) {
	if nodeID == "" {
		return nil, errors.New("pull grant: no node id")
	}
	if _, err := digest.Parse(dgst); err != nil {
		return nil, fmt.Errorf("pull grant: digest %q: %w", dgst, err)
	}
	payload, err := proto.Marshal(&berthv1.PullGrant{NodeId: nodeID, Digest: dgst, IssuedAt: timestamppb.New(now)})
	if err != nil {
		return nil, fmt.Errorf("pull grant: %w", err)
	}
	msg := append([]byte(pullGrantContext), payload...)
	var sig []byte
	switch key.Public().(type) {
	case ed25519.PublicKey:
		sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		sum := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("pull grant: signing: %w", err)
	}
	return proto.Marshal(&berthv1.SignedPullGrant{Grant: payload, Signature: sig})
}

// PullGrantVerifier checks pull grants against the cluster CA
// certificates a node trusts (several while the CA rolls over).
type PullGrantVerifier struct {
	cas []*x509.Certificate
	// trust, when set, gives the CA certificates (PEM) of the moment,
	// read at each Verify: they change with a CA rotation.
	trust func() []byte
}

// NewLivePullGrantVerifier checks grants against the CA certificates trust
// returns at each check.
func NewLivePullGrantVerifier(trust func() []byte) *PullGrantVerifier {
	return &PullGrantVerifier{trust: trust}
}

// NewPullGrantVerifier reads the CA certificates of caPEM.
func NewPullGrantVerifier(caPEM []byte) (*PullGrantVerifier, error) {
	v := &PullGrantVerifier{}
	for rest := caPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pull grants: CA certificate: %w", err)
		}
		v.cas = append(v.cas, c)
	}
	if len(v.cas) == 0 {
		return nil, errors.New("pull grants: no CA certificate in the cluster CA PEM")
	}
	return v, nil
}

// Verify returns the grant signed holds when one of the CAs signed it and
// it was issued to node nodeID; the caller then serves only its digest.
func (v *PullGrantVerifier) Verify(signed []byte, nodeID string) (*berthv1.PullGrant, error) {
	var s berthv1.SignedPullGrant
	if err := proto.Unmarshal(signed, &s); err != nil {
		return nil, fmt.Errorf("%w: not a pull grant: %v", ErrPullGrant, err)
	}
	msg := append([]byte(pullGrantContext), s.Grant...)
	cas := v.cas
	if v.trust != nil {
		live, err := NewPullGrantVerifier(v.trust())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPullGrant, err)
		}
		cas = live.cas
	}
	ok := false
	for _, ca := range cas {
		if checkSignature(ca.PublicKey, msg, s.Signature) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: it is not signed by this cluster's CA", ErrPullGrant)
	}
	var g berthv1.PullGrant
	if err := proto.Unmarshal(s.Grant, &g); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPullGrant, err)
	}
	if g.NodeId != nodeID {
		return nil, fmt.Errorf("%w: it was issued to node %s, not to node %s", ErrPullGrant, g.NodeId, nodeID)
	}
	if _, err := digest.Parse(g.Digest); err != nil {
		return nil, fmt.Errorf("%w: digest %q: %v", ErrPullGrant, g.Digest, err)
	}
	return &g, nil
}

func checkSignature(pub crypto.PublicKey, msg, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, sum[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	default:
		return false
	}
}
