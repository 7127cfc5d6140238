package ca

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/identity"
)

func openWithClock(t *testing.T, store *memStore, clock *fakeClock) *Authority {
	t.Helper()
	a, err := Open(context.Background(), store, testKEK, clock.Now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a
}

func TestJoinTokenReprintAndValidate(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := newMemStore()
	a := openWithClock(t, store, clock)

	tok, expires, err := a.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	if want := clock.Now().Add(DefaultTokenTTL); !expires.Equal(want) {
		t.Errorf("token expires %v, want %v", expires, want)
	}
	parsed, err := identity.ParseToken(tok)
	if err != nil {
		t.Fatalf("ParseToken(JoinToken()): %v", err)
	}
	if parsed.CADigest != a.Digest() {
		t.Errorf("token carries digest %s, CA has %s", parsed.CADigest, a.Digest())
	}
	if _, err := a.ValidateToken(ctx, tok); err != nil {
		t.Errorf("ValidateToken(new token): %v", err)
	}

	// Another server of the cluster prints the same token again.
	clock.Advance(time.Hour)
	other := openWithClock(t, store, clock)
	again, againExpires, err := other.JoinToken(ctx, false, time.Minute, 0)
	if err != nil {
		t.Fatalf("JoinToken again: %v", err)
	}
	if again != tok || !againExpires.Equal(expires) {
		t.Errorf("JoinToken again = %s (expires %v), want the existing %s (expires %v)", again, againExpires, tok, expires)
	}
	if _, err := other.ValidateToken(ctx, tok); err != nil {
		t.Errorf("other server: ValidateToken: %v", err)
	}
	if n := store.tokenCount(); n != 1 {
		t.Errorf("store holds %d token records, want 1", n)
	}
}

func TestJoinTokenExpiry(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := newMemStore()
	a := openWithClock(t, store, clock)

	tok, expires, err := a.JoinToken(ctx, false, 2*time.Hour, 0)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	clock.Advance(2 * time.Hour)
	_, err = a.ValidateToken(ctx, tok)
	if !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("ValidateToken after expiry = %v, want ErrTokenExpired", err)
	}
	for _, want := range []string{expires.UTC().Format(time.RFC3339), "run `berth join-token` on a server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// Asking again replaces the expired token and drops its record.
	fresh, _, err := a.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken after expiry: %v", err)
	}
	if fresh == tok {
		t.Errorf("JoinToken returned the expired token")
	}
	if _, err := a.ValidateToken(ctx, fresh); err != nil {
		t.Errorf("ValidateToken(fresh): %v", err)
	}
	if n := store.tokenCount(); n != 1 {
		t.Errorf("store holds %d token records, want 1 (the expired one deleted)", n)
	}
}

func TestJoinTokenNeverExpires(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	a := openWithClock(t, newMemStore(), clock)
	tok, expires, err := a.JoinToken(ctx, false, -1, 0)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	if !expires.IsZero() {
		t.Errorf("token without expiry reports expiry %v", expires)
	}
	clock.Advance(20 * 365 * 24 * time.Hour)
	if _, err := a.ValidateToken(ctx, tok); err != nil {
		t.Errorf("ValidateToken much later: %v", err)
	}
}

func TestJoinTokenRotate(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := newMemStore()
	a := openWithClock(t, store, clock)

	old, _, err := a.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	clock.Advance(time.Second)
	rotated, _, err := a.JoinToken(ctx, true, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken(rotate): %v", err)
	}
	if rotated == old {
		t.Fatalf("rotation returned the old token")
	}
	if _, err := a.ValidateToken(ctx, old); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("ValidateToken(old) after rotation = %v, want ErrTokenInvalid", err)
	}
	if _, err := a.ValidateToken(ctx, rotated); err != nil {
		t.Errorf("ValidateToken(rotated): %v", err)
	}
	again, _, err := a.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken after rotation: %v", err)
	}
	if again != rotated {
		t.Errorf("JoinToken after rotation = %s, want the rotated %s", again, rotated)
	}
	if n := store.tokenCount(); n != 1 {
		t.Errorf("store holds %d token records, want 1", n)
	}
}

func TestValidateTokenInvalid(t *testing.T) {
	ctx := context.Background()
	a, _ := openCA(t)
	other, _ := openCA(t)
	good, _, err := a.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	foreign, _, err := other.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken on the other cluster: %v", err)
	}
	parsed, err := identity.ParseToken(good)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	wrongSecret := parsed
	wrongSecret.Secret = strings.Repeat("0", len(parsed.Secret))
	unknownID := parsed
	unknownID.ID = "00000000"
	random, err := identity.GenerateToken(a.Digest())
	if err != nil {
		t.Fatalf("GenerateToken: %v", err)
	}
	tests := []struct {
		name, token, want string
	}{
		{"malformed", "BERTH-1-nope", "join token is malformed"},
		{"other cluster", foreign, "another cluster's CA"},
		{"wrong secret", wrongSecret.String(), "revoked or never issued"},
		{"unknown id", unknownID.String(), "revoked or never issued"},
		{"never issued", random.String(), "revoked or never issued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.ValidateToken(ctx, tt.token)
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("ValidateToken = %v, want ErrTokenInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestLimitedToken: --uses N makes a new token that admits N joins; each
// join stores what TakeUse returns; the N+1th is refused with the numbers
// and how to get another, and a used-up token is never printed again.
func TestLimitedToken(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	a := openWithClock(t, store, newFakeClock())
	unlimited, _, err := a.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.JoinToken(ctx, false, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if tok == unlimited {
		t.Fatalf("JoinToken(uses 2) returned the unlimited token")
	}
	for i := range 2 {
		rec, err := a.ValidateToken(ctx, tok)
		if err != nil {
			t.Fatalf("join %d: ValidateToken: %v", i+1, err)
		}
		next, err := TakeUse(rec)
		if err != nil || next == nil || next.GetUsesLeft() != rec.GetUsesLeft()-1 {
			t.Fatalf("join %d: TakeUse = %v, %v; want one use fewer", i+1, next, err)
		}
		if err := store.PutToken(ctx, next); err != nil {
			t.Fatal(err)
		}
	}
	_, err = a.ValidateToken(ctx, tok)
	if !errors.Is(err, ErrTokenUsedUp) || !strings.Contains(err.Error(), "2 of 2 uses") || !strings.Contains(err.Error(), "--rotate --uses 2") {
		t.Fatalf("third join: ValidateToken = %v, want ErrTokenUsedUp naming 2 of 2 uses and --rotate --uses 2", err)
	}
	again, _, err := a.JoinToken(ctx, false, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if again == tok {
		t.Fatalf("JoinToken printed the used-up token again")
	}
	if rec, err := a.ValidateToken(ctx, unlimited); err != nil {
		t.Fatalf("the unlimited token: %v", err)
	} else if next, err := TakeUse(rec); next != nil || err != nil {
		t.Fatalf("TakeUse(unlimited) = %v, %v; want nothing to write", next, err)
	}
}
