package apiserver

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// APITokensPrefix holds one APIToken per token, keyed by its id. Like join
// tokens it lives under pki/: it is a credential.
const APITokensPrefix = store.Root + "pki/api-tokens/"

// apiTokenPrefix starts every API token, so that a leaked one is easy to
// recognise in logs and by secret scanners.
const apiTokenPrefix = "berth_"

// apiTokenSecretBytes is the entropy of a token's secret.
const apiTokenSecretBytes = 32

// ErrAPITokenInvalid is what CheckAPIToken's errors wrap: one error for
// malformed, unknown, revoked, wrong-secret and expired tokens, so that a
// caller learns nothing about which ids exist.
var ErrAPITokenInvalid = errors.New("API token is not valid")

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func apiTokenKey(id string) string { return APITokensPrefix + id }

// CreateAPIToken makes a token named req.Name that authenticates HTTP/JSON
// clients as an admin. The secret is returned once: only its hash is
// stored.
func (s *Server) CreateAPIToken(ctx context.Context, req *berthv1.CreateAPITokenRequest) (*berthv1.CreateAPITokenResponse, error) {
	return s.createAPIToken(ctx, req, time.Now())
}

func (s *Server) createAPIToken(ctx context.Context, req *berthv1.CreateAPITokenRequest, now time.Time) (*berthv1.CreateAPITokenResponse, error) {
	name := strings.TrimSpace(req.GetName())
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "the token needs a name that says what it is for: berth token create NAME")
	}
	if req.GetTtl() != nil && req.GetTtl().AsDuration() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "token %q: ttl %s is not positive; leave it out for a token that does not expire", name, req.GetTtl().AsDuration())
	}
	existing, err := s.listAPITokens(ctx)
	if err != nil {
		return nil, err
	}
	// Names are unique among valid tokens, so revoking by name is
	// unambiguous.
	if slices.ContainsFunc(existing, func(t *berthv1.APIToken) bool { return t.GetName() == name && !apiTokenExpired(t, now) }) {
		return nil, status.Errorf(codes.AlreadyExists, "an API token named %q exists; revoke it first (berth token revoke %s) or pick another name", name, name)
	}
	secret := make([]byte, apiTokenSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, status.Errorf(codes.Internal, "reading random bytes for the token: %v", err)
	}
	plain := secretEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(plain))
	tok := &berthv1.APIToken{Id: store.NewID(), Name: name, SecretHash: sum[:], CreatedAt: timestamppb.New(now)}
	if ttl := req.GetTtl(); ttl != nil {
		tok.ExpiresAt = timestamppb.New(now.Add(ttl.AsDuration()))
	}
	var txn store.Txn
	txn.Create(apiTokenKey(tok.Id), tok)
	if _, err := s.cfg.Store.Commit(ctx, &txn); err != nil {
		return nil, storeError(fmt.Errorf("storing API token %q: %w", name, err))
	}
	s.log.Info("API token created", "id", tok.Id, "name", name)
	return &berthv1.CreateAPITokenResponse{Token: redacted(tok), Secret: apiTokenPrefix + tok.Id + "." + plain}, nil
}

// ListAPITokens lists the tokens, expired ones included, without their
// secret hashes.
func (s *Server) ListAPITokens(ctx context.Context, _ *berthv1.ListAPITokensRequest) (*berthv1.ListAPITokensResponse, error) {
	toks, err := s.listAPITokens(ctx)
	if err != nil {
		return nil, err
	}
	resp := &berthv1.ListAPITokensResponse{}
	for _, t := range toks {
		resp.Tokens = append(resp.Tokens, redacted(t))
	}
	slices.SortFunc(resp.Tokens, func(a, b *berthv1.APIToken) int {
		return cmp.Or(a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()), strings.Compare(a.GetName(), b.GetName()))
	})
	return resp, nil
}

// RevokeAPIToken deletes the tokens whose id or name is req.Token; requests
// carrying them fail from then on.
func (s *Server) RevokeAPIToken(ctx context.Context, req *berthv1.RevokeAPITokenRequest) (*berthv1.RevokeAPITokenResponse, error) {
	ref := strings.TrimSpace(req.GetToken())
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "name the token to revoke by its name or id; berth token ls lists them")
	}
	toks, err := s.listAPITokens(ctx)
	if err != nil {
		return nil, err
	}
	var txn store.Txn
	for _, t := range toks {
		if t.GetId() == ref || t.GetName() == ref {
			txn.Delete(apiTokenKey(t.GetId()), 0)
		}
	}
	if txn.Len() == 0 {
		return nil, status.Errorf(codes.NotFound, "no API token has the name or id %q; berth token ls lists them", ref)
	}
	if _, err := s.cfg.Store.Commit(ctx, &txn); err != nil {
		return nil, storeError(fmt.Errorf("revoking API token %q: %w", ref, err))
	}
	s.log.Info("API token revoked", "token", ref, "count", txn.Len())
	return &berthv1.RevokeAPITokenResponse{}, nil
}

// CheckAPIToken returns the token that bearer (the secret CreateAPIToken
// returned) belongs to, or an error wrapping ErrAPITokenInvalid when it is
// malformed, unknown, revoked or expired. Other errors mean the store could
// not be read.
func (s *Server) CheckAPIToken(ctx context.Context, bearer string) (*berthv1.APIToken, error) {
	return s.checkAPIToken(ctx, bearer, time.Now())
}

func (s *Server) checkAPIToken(ctx context.Context, bearer string, now time.Time) (*berthv1.APIToken, error) {
	rest, ok := strings.CutPrefix(bearer, apiTokenPrefix)
	id, plain, found := strings.Cut(rest, ".")
	if !ok || !found || id == "" || plain == "" || strings.Contains(id, "/") {
		return nil, fmt.Errorf("%w: it does not look like one (berth_<id>.<secret>); berth token create makes one", ErrAPITokenInvalid)
	}
	tok := &berthv1.APIToken{}
	err := s.cfg.Store.GetMessage(ctx, apiTokenKey(id), tok)
	invalid := fmt.Errorf("%w: it was revoked or never issued; berth token create makes one", ErrAPITokenInvalid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, invalid
	case err != nil:
		return nil, fmt.Errorf("reading API token %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(plain))
	if subtle.ConstantTimeCompare(sum[:], tok.GetSecretHash()) != 1 {
		return nil, invalid
	}
	if apiTokenExpired(tok, now) {
		return nil, fmt.Errorf("%w: it expired at %s; berth token create makes a new one", ErrAPITokenInvalid,
			tok.GetExpiresAt().AsTime().UTC().Format(time.RFC3339))
	}
	return redacted(tok), nil
}

func (s *Server) listAPITokens(ctx context.Context) ([]*berthv1.APIToken, error) {
	resp, err := s.cfg.Store.Client().Get(ctx, APITokensPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, storeError(fmt.Errorf("listing API tokens: %w", err))
	}
	out := make([]*berthv1.APIToken, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		t := &berthv1.APIToken{}
		if err := proto.Unmarshal(kv.Value, t); err != nil {
			return nil, status.Errorf(codes.Internal, "API token %s: %v", kv.Key, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// redacted is t without its secret hash: the hash never leaves the server.
func redacted(t *berthv1.APIToken) *berthv1.APIToken {
	c := proto.Clone(t).(*berthv1.APIToken)
	c.SecretHash = nil
	return c
}

func apiTokenExpired(t *berthv1.APIToken, now time.Time) bool {
	return t.GetExpiresAt() != nil && !now.Before(t.GetExpiresAt().AsTime())
}
