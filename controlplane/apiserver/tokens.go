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
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
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

// CreateAPIToken makes a token named req.Name with req.Role in
// req.Namespaces (both default to the caller's own). A token is never more
// powerful than the caller who makes it. The secret is returned once: only
// its hash is stored.
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
	maker := caller(ctx)
	grant, err := grantOf(maker, req.GetRole(), req.GetNamespaces())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "token %q: %v", name, err)
	}
	grant.Kind, grant.Name = "token", name
	if !maker.Covers(grant) {
		return nil, status.Errorf(codes.PermissionDenied, "token %q would have the %s role in %s, more than its maker %s (%s in %s) may do; ask for at most your own role and namespaces",
			name, grant.Role, namespacesText(grant.Namespaces), maker, maker.Role, namespacesText(maker.Namespaces))
	}
	// Names are unique among valid tokens, so revoking by name is
	// unambiguous.
	existing, err := s.listAPITokens(ctx)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(existing, func(t *berthv1.APIToken) bool { return t.GetName() == name && !apiTokenExpired(t, now) }) {
		return nil, status.Errorf(codes.AlreadyExists, "an API token named %q exists; revoke it first (berth token revoke %s) or pick another name", name, name)
	}
	secret := make([]byte, apiTokenSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return nil, status.Errorf(codes.Internal, "reading random bytes for the token: %v", err)
	}
	plain := secretEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(plain))
	tok := &berthv1.APIToken{
		Id: store.NewID(), Name: name, SecretHash: sum[:], CreatedAt: timestamppb.New(now),
		Role: string(grant.Role), Namespaces: grant.Namespaces, CreatedBy: maker.String(),
	}
	if ttl := req.GetTtl(); ttl != nil {
		tok.ExpiresAt = timestamppb.New(now.Add(ttl.AsDuration()))
	}
	var txn store.Txn
	txn.Create(apiTokenKey(tok.Id), tok)
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return nil, storeError(fmt.Errorf("storing API token %q: %w", name, err))
	}
	// The token works as soon as its maker has it.
	if err := s.cfg.APITokens.WaitRevision(ctx, rev); err != nil {
		return nil, storeError(err)
	}
	s.log.Info("API token created", "id", tok.Id, "name", name, "role", tok.Role, "namespaces", tok.Namespaces, "by", tok.CreatedBy)
	return &berthv1.CreateAPITokenResponse{Token: redacted(tok), Secret: apiTokenPrefix + tok.Id + "." + plain}, nil
}

// grantOf is what a token or user asks for: role and namespaces, each
// the maker's own when not given.
func grantOf(maker access.Principal, role string, namespaces []string) (access.Principal, error) {
	g := access.Principal{Role: identity.Role(role), Namespaces: namespaces}
	if role == "" {
		g.Role = maker.Role
	}
	if access.LevelOf(g.Role) == access.None {
		return g, fmt.Errorf("role %q is not one of viewer, deployer, admin", g.Role)
	}
	if len(namespaces) == 0 {
		g.Namespaces = maker.Namespaces
	}
	for _, ns := range g.Namespaces {
		if err := validation.ValidateName("namespace", ns); err != nil {
			return g, err
		}
	}
	g.Namespaces = slices.Compact(slices.Sorted(slices.Values(g.Namespaces)))
	return g, nil
}

func namespacesText(ns []string) string {
	if len(ns) == 0 {
		return "every namespace"
	}
	return "namespaces " + strings.Join(ns, ", ")
}

// TokenPrincipal is the principal an API token authenticates: its role
// (admin for tokens made before roles) in its namespaces.
func TokenPrincipal(t *berthv1.APIToken) access.Principal {
	role := identity.Role(t.GetRole())
	if role == "" {
		role = identity.RoleAdmin
	}
	return access.Principal{Kind: "token", Name: t.GetName(), Role: role, Namespaces: t.GetNamespaces(), TokenID: t.GetId()}
}

// caller is who calls: the principal the authentication interceptor
// found. A call without one (the server's own tests call handlers
// directly) acts as an admin of every namespace.
func caller(ctx context.Context) access.Principal {
	if p, ok := access.FromContext(ctx); ok {
		return p
	}
	return access.Principal{Kind: "internal", Name: "apiserver", Role: identity.RoleAdmin}
}

// mayManage reports whether p may see and revoke token t: admins every
// token, others those they made.
func mayManage(p access.Principal, t *berthv1.APIToken) bool {
	return p.Role == identity.RoleAdmin || t.GetCreatedBy() == p.String()
}

// ListAPITokens lists the tokens, expired ones included, without their
// secret hashes: every token to an admin, to others the tokens they made.
func (s *Server) ListAPITokens(ctx context.Context, _ *berthv1.ListAPITokensRequest) (*berthv1.ListAPITokensResponse, error) {
	toks, err := s.listAPITokens(ctx)
	if err != nil {
		return nil, err
	}
	p := caller(ctx)
	resp := &berthv1.ListAPITokensResponse{}
	for _, t := range toks {
		if !mayManage(p, t) {
			continue
		}
		resp.Tokens = append(resp.Tokens, redacted(t))
	}
	slices.SortFunc(resp.Tokens, func(a, b *berthv1.APIToken) int {
		return cmp.Or(a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()), strings.Compare(a.GetName(), b.GetName()))
	})
	return resp, nil
}

// RevokeAPIToken deletes the tokens whose id or name is req.Token (among
// those the caller may manage); requests carrying them fail from then on,
// and their open streams end.
func (s *Server) RevokeAPIToken(ctx context.Context, req *berthv1.RevokeAPITokenRequest) (*berthv1.RevokeAPITokenResponse, error) {
	ref := strings.TrimSpace(req.GetToken())
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "name the token to revoke by its name or id; berth token ls lists them")
	}
	toks, err := s.listAPITokens(ctx)
	if err != nil {
		return nil, err
	}
	p := caller(ctx)
	var txn store.Txn
	for _, t := range toks {
		if (t.GetId() == ref || t.GetName() == ref) && mayManage(p, t) {
			txn.Delete(apiTokenKey(t.GetId()), 0)
		}
	}
	if txn.Len() == 0 {
		return nil, status.Errorf(codes.NotFound, "no API token you may revoke has the name or id %q; berth token ls lists them", ref)
	}
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return nil, storeError(fmt.Errorf("revoking API token %q: %w", ref, err))
	}
	// Once this returns, the token no longer works here.
	if err := s.cfg.APITokens.WaitRevision(ctx, rev); err != nil {
		return nil, storeError(err)
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
	id, plain, err := parseAPIToken(bearer)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.APITokens.WaitSynced(ctx); err != nil {
		return nil, fmt.Errorf("reading API tokens: %w", err)
	}
	tok, ok := s.cfg.APITokens.Get(id)
	invalid := fmt.Errorf("%w: it was revoked or never issued; berth token create makes one", ErrAPITokenInvalid)
	if !ok {
		return nil, invalid
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

// parseAPIToken splits a bearer token, berth_<id>.<secret>, into its id
// and secret. The id names a store key, so it holds no '/'.
func parseAPIToken(bearer string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(bearer, apiTokenPrefix)
	id, secret, found := strings.Cut(rest, ".")
	if !ok || !found || id == "" || secret == "" || strings.Contains(id, "/") {
		return "", "", fmt.Errorf("%w: it does not look like one (berth_<id>.<secret>); berth token create makes one", ErrAPITokenInvalid)
	}
	return id, secret, nil
}

func (s *Server) listAPITokens(ctx context.Context) ([]*berthv1.APIToken, error) {
	if err := s.cfg.APITokens.WaitSynced(ctx); err != nil {
		return nil, storeError(err)
	}
	return s.cfg.APITokens.List(), nil
}

// NewAPITokenMirror follows the stored API tokens for CheckAPIToken and
// the token listings; onChange, when not nil, sees each change (the
// server ends the streams of revoked tokens with it). Run it before
// serving.
func NewAPITokenMirror(st *store.Store, onChange func(id string, t *berthv1.APIToken, deleted bool), log *slog.Logger) *store.Mirror[*berthv1.APIToken] {
	return store.NewMirror(st, APITokensPrefix, func() *berthv1.APIToken { return &berthv1.APIToken{} }, onChange, log)
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
