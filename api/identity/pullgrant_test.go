package identity

import (
	"crypto/ecdsa"
	"errors"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/testca"
	"google.golang.org/protobuf/proto"
)

const grantDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// testCA makes a CA key and its certificate PEM.
func testCA(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	ca := testca.New(t)
	return ca.Key, ca.PEM
}

func TestPullGrant(t *testing.T) {
	key, caPEM := testCA(t)
	otherKey, otherPEM := testCA(t)
	v, err := NewPullGrantVerifier(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignPullGrant(key, "n1", grantDigest, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.Verify(signed, "n1")
	if err != nil || g.Digest != grantDigest || g.NodeId != "n1" {
		t.Fatalf("Verify(own grant) = %v, %v", g, err)
	}
	if _, err := v.Verify(signed, "n2"); !errors.Is(err, ErrPullGrant) {
		t.Errorf("Verify(grant of n1, as n2) = %v, want ErrPullGrant", err)
	}
	forged, _ := SignPullGrant(otherKey, "n1", grantDigest, time.Now())
	if _, err := v.Verify(forged, "n1"); !errors.Is(err, ErrPullGrant) {
		t.Errorf("Verify(grant of another CA) = %v, want ErrPullGrant", err)
	}
	// A grant whose payload was changed after signing (another digest).
	var s berthv1.SignedPullGrant
	proto.Unmarshal(signed, &s)
	payload, _ := proto.Marshal(&berthv1.PullGrant{NodeId: "n1", Digest: "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"})
	s.Grant = payload
	tampered, _ := proto.Marshal(&s)
	if _, err := v.Verify(tampered, "n1"); !errors.Is(err, ErrPullGrant) {
		t.Errorf("Verify(tampered grant) = %v, want ErrPullGrant", err)
	}
	if _, err := v.Verify([]byte("junk"), "n1"); !errors.Is(err, ErrPullGrant) {
		t.Errorf("Verify(junk) = %v, want ErrPullGrant", err)
	}
	// Both CAs trusted (a CA rollover): the other CA's grant passes.
	both, _ := NewPullGrantVerifier(append(append([]byte{}, caPEM...), otherPEM...))
	if _, err := both.Verify(forged, "n1"); err != nil {
		t.Errorf("Verify with both CAs trusted: %v", err)
	}
	if _, err := SignPullGrant(key, "n1", "latest", time.Now()); err == nil {
		t.Errorf("SignPullGrant accepted a tag as digest")
	}
	if _, err := NewPullGrantVerifier([]byte("no pem")); err == nil {
		t.Errorf("NewPullGrantVerifier accepted no certificate")
	}
}
