package store_test

import (
	"context"
	"errors"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
)

func TestClaim(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	claim := store.NetworkSubnetKey("10.128.0.0/24")
	netA := &berthv1.Network{Meta: &berthv1.Meta{Id: "a"}, Namespace: "default", Name: "a", Subnet: "10.128.0.0/24"}
	netB := &berthv1.Network{Meta: &berthv1.Meta{Id: "b"}, Namespace: "default", Name: "b", Subnet: "10.128.0.0/24"}
	keyA, keyB := store.NetworkKey("default", "a"), store.NetworkKey("default", "b")

	var first store.Txn
	first.Create(keyA, netA)
	first.Claim(claim, keyA)
	if _, err := s.Commit(ctx, &first); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if holder, err := s.ClaimHolder(ctx, claim); err != nil || holder != keyA {
		t.Fatalf("ClaimHolder() = %q, %v; want %q", holder, err, keyA)
	}

	// A second claim fails, and takes the rest of its transaction with it.
	var second store.Txn
	second.Create(keyB, netB)
	second.Claim(claim, keyB)
	if _, err := s.Commit(ctx, &second); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second claim: got %v, want ErrConflict", err)
	}
	if err := s.Get(ctx, keyB, &berthv1.Network{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("network b was written beside a failed claim: %v", err)
	}

	// Released with its network, the subnet can be claimed again.
	var release store.Txn
	release.Delete(keyA, 0)
	release.Delete(claim, 0)
	if _, err := s.Commit(ctx, &release); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := s.ClaimHolder(ctx, claim); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimHolder() after release: got %v, want ErrNotFound", err)
	}
	if _, err := s.Commit(ctx, &second); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}
