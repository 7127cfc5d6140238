package ca

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultTokenTTL is how long a join token lasts when JoinToken is given
// no ttl.
const DefaultTokenTTL = 24 * time.Hour

// Join token errors, wrapped with details by ValidateToken.
var (
	ErrTokenInvalid = errors.New("join token is not valid for this cluster")
	ErrTokenExpired = errors.New("join token expired")
	// ErrTokenUsedUp is a token limited to N joins (--uses) that admitted
	// N nodes already.
	ErrTokenUsedUp = errors.New("join token used up")
)

// JoinToken returns the newest join token that is still valid, making one
// when there is none. With rotate it always makes a new one and revokes all
// others, for when a token may have leaked. ttl applies to a token made by
// this call: 0 means DefaultTokenTTL, negative means it never expires.
// uses > 0 always makes a new token, one that admits that many nodes
// (other valid tokens stay unless rotate); a used-up token is never the
// current one.
//
// Token secrets are not stored: a token's secret is HMAC-SHA256(key, id)
// with a key derived from the CA key, so any server can print a token again
// from its record (id and expiry), while the record's secret_hash alone
// cannot be turned back into a usable token. Revoking a token deletes its
// record; ValidateToken then refuses it although its secret is still
// derivable.
func (a *Authority) JoinToken(ctx context.Context, rotate bool, ttl time.Duration, uses uint32) (token string, expires time.Time, err error) {
	now := a.clock()
	recs, err := a.p.ListTokens(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("list join tokens: %w", err)
	}
	var valid, stale []*berthv1.JoinTokenRecord
	for _, r := range recs {
		switch {
		case expired(r, now), usedUp(r):
			stale = append(stale, r)
		default:
			valid = append(valid, r)
		}
	}
	var current *berthv1.JoinTokenRecord
	if !rotate && uses == 0 && len(valid) > 0 {
		current = slices.MaxFunc(valid, func(x, y *berthv1.JoinTokenRecord) int {
			return x.GetCreatedAt().AsTime().Compare(y.GetCreatedAt().AsTime())
		})
	} else {
		if current, err = a.newTokenRecord(now, ttl, uses); err != nil {
			return "", time.Time{}, err
		}
		// The new token is stored before the old ones are revoked, so that
		// the cluster always has a valid token.
		if err := a.p.PutToken(ctx, current); err != nil {
			return "", time.Time{}, fmt.Errorf("store join token: %w", err)
		}
		if rotate {
			stale = append(stale, valid...)
		}
	}
	for _, r := range stale {
		if err := a.p.DeleteToken(ctx, r.GetId()); err != nil {
			if rotate && !expired(r, now) && !usedUp(r) {
				return "", time.Time{}, fmt.Errorf("revoke join token %s: %w; run the rotation again", r.GetId(), err)
			}
			// Expired and used-up records are only clutter: ValidateToken
			// refuses them.
			slog.Warn("could not delete expired join token", "id", r.GetId(), "err", err)
		}
	}
	if e := current.GetExpiresAt(); e != nil {
		expires = e.AsTime()
	}
	return a.tokenFor(current.GetId()).String(), expires, nil
}

// ValidateToken checks a join token presented by an agent and returns its
// record. It fails with an error wrapping ErrTokenInvalid when the token is
// malformed, names another cluster, was revoked or has a wrong secret, with
// one wrapping ErrTokenExpired when it is genuine but too old, and with one
// wrapping ErrTokenUsedUp when it admitted all the nodes it may. A join
// takes one use of a limited token with TakeUse, in the transaction that
// admits the node.
func (a *Authority) ValidateToken(ctx context.Context, token string) (*berthv1.JoinTokenRecord, error) {
	t, err := identity.ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	if st := a.state(); t.CADigest != st.digest && !slices.Contains(st.previousDigests, t.CADigest) {
		return nil, fmt.Errorf("%w: it was made by another cluster's CA; run `berth join-token` on a server of this cluster", ErrTokenInvalid)
	}
	recs, err := a.p.ListTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	i := slices.IndexFunc(recs, func(r *berthv1.JoinTokenRecord) bool { return r.GetId() == t.ID })
	// One message for unknown ids and wrong secrets, so that probing tells
	// an attacker nothing about which ids exist.
	revoked := fmt.Errorf("%w: it was revoked or never issued; run `berth join-token` on a server for the current one", ErrTokenInvalid)
	if i < 0 {
		return nil, revoked
	}
	rec := recs[i]
	sum := sha256.Sum256([]byte(t.Secret))
	if subtle.ConstantTimeCompare(sum[:], rec.GetSecretHash()) != 1 {
		return nil, revoked
	}
	if now := a.clock(); expired(rec, now) {
		return nil, fmt.Errorf("%w at %s; run `berth join-token` on a server for a new one",
			ErrTokenExpired, rec.GetExpiresAt().AsTime().UTC().Format(time.RFC3339))
	}
	if _, err := TakeUse(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// TakeUse returns rec with one use fewer, to store in the transaction that
// admits a node; nil when rec is not limited (nothing to write). It fails
// with an error wrapping ErrTokenUsedUp when no use is left.
func TakeUse(rec *berthv1.JoinTokenRecord) (*berthv1.JoinTokenRecord, error) {
	if rec.GetMaxUses() == 0 {
		return nil, nil
	}
	if usedUp(rec) {
		n := rec.GetMaxUses()
		return nil, fmt.Errorf("%w (%d of %d uses); make another with `berth join-token --rotate --uses %d`", ErrTokenUsedUp, n, n, n)
	}
	next := proto.Clone(rec).(*berthv1.JoinTokenRecord)
	next.UsesLeft--
	return next, nil
}

func usedUp(r *berthv1.JoinTokenRecord) bool { return r.GetMaxUses() > 0 && r.GetUsesLeft() == 0 }

func (a *Authority) newTokenRecord(now time.Time, ttl time.Duration, uses uint32) (*berthv1.JoinTokenRecord, error) {
	// GenerateToken draws the random id; the secret is then replaced by the
	// derived one so that it can be printed again.
	t, err := identity.GenerateToken(a.state().digest)
	if err != nil {
		return nil, err
	}
	t = a.tokenFor(t.ID)
	sum := sha256.Sum256([]byte(t.Secret))
	rec := &berthv1.JoinTokenRecord{
		Id:         t.ID,
		SecretHash: sum[:],
		CreatedAt:  timestamppb.New(now),
		MaxUses:    uses,
		UsesLeft:   uses,
	}
	if ttl = cmp.Or(ttl, DefaultTokenTTL); ttl > 0 {
		rec.ExpiresAt = timestamppb.New(now.Add(ttl))
	}
	return rec, nil
}

// tokenFor derives the full token whose id is id.
func (a *Authority) tokenFor(id string) identity.Token {
	st := a.state()
	mac := hmac.New(sha256.New, st.tokenKey)
	mac.Write([]byte(id))
	secret := mac.Sum(nil)[:identity.TokenSecretBytes]
	return identity.Token{CADigest: st.digest, ID: id, Secret: identity.TokenSecret(secret)}
}

func expired(r *berthv1.JoinTokenRecord, now time.Time) bool {
	return r.GetExpiresAt() != nil && !now.Before(r.GetExpiresAt().AsTime())
}
