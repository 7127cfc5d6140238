package apiserver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestAPITokenLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	ci, err := s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "ci"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if ci.GetToken().GetSecretHash() != nil {
		t.Errorf("CreateAPIToken returned the secret hash")
	}
	if !strings.HasPrefix(ci.GetSecret(), "berth_"+ci.GetToken().GetId()+".") {
		t.Errorf("secret %q does not start with berth_<id>.", ci.GetSecret())
	}
	short, err := s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "short", Ttl: durationpb.New(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}

	// The stored record keeps a hash, never the secret.
	raw, err := s.cfg.Store.Client().Get(ctx, APITokensPrefix+ci.GetToken().GetId())
	if err != nil || len(raw.Kvs) != 1 {
		t.Fatalf("stored token: %v (%d keys)", err, len(raw.Kvs))
	}
	if secret := ci.GetSecret()[strings.Index(ci.GetSecret(), ".")+1:]; strings.Contains(string(raw.Kvs[0].Value), secret) {
		t.Errorf("the stored token holds its secret in clear")
	}

	list, err := s.ListAPITokens(ctx, &berthv1.ListAPITokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetTokens()) != 2 || list.GetTokens()[0].GetName() != "ci" || list.GetTokens()[1].GetName() != "short" {
		t.Fatalf("ListAPITokens = %v, want ci then short", list.GetTokens())
	}
	for _, tok := range list.GetTokens() {
		if tok.GetSecretHash() != nil {
			t.Errorf("ListAPITokens returned %s's secret hash", tok.GetName())
		}
	}

	wrongSecret := ci.GetSecret()[:len(ci.GetSecret())-1] + "x"
	if strings.HasSuffix(ci.GetSecret(), "x") {
		wrongSecret = ci.GetSecret()[:len(ci.GetSecret())-1] + "y"
	}
	checks := []struct {
		name   string
		bearer string
		at     time.Time
		want   string // the token's name, or "" for invalid
	}{
		{"valid", ci.GetSecret(), now, "ci"},
		{"never expires", ci.GetSecret(), now.Add(1000 * time.Hour), "ci"},
		{"before expiry", short.GetSecret(), now.Add(59 * time.Minute), "short"},
		{"expired", short.GetSecret(), now.Add(time.Hour), ""},
		{"wrong secret", wrongSecret, now, ""},
		{"unknown id", "berth_nosuchid." + strings.Repeat("a", 52), now, ""},
		{"malformed", "Bearer nonsense", now, ""},
		{"empty", "", now, ""},
		{"path in id", "berth_../ca." + strings.Repeat("a", 52), now, ""},
	}
	for _, c := range checks {
		tok, err := s.checkAPIToken(ctx, c.bearer, c.at)
		switch {
		case c.want == "" && !errors.Is(err, ErrAPITokenInvalid):
			t.Errorf("%s: checkAPIToken = %v, %v; want ErrAPITokenInvalid", c.name, tok, err)
		case c.want != "" && (err != nil || tok.GetName() != c.want):
			t.Errorf("%s: checkAPIToken = %v, %v; want token %s", c.name, tok, err, c.want)
		case c.want != "" && tok.GetSecretHash() != nil:
			t.Errorf("%s: checkAPIToken returned the secret hash", c.name)
		}
	}

	// Revoke by name, then by id.
	if _, err := s.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{Token: "ci"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.checkAPIToken(ctx, ci.GetSecret(), now); !errors.Is(err, ErrAPITokenInvalid) {
		t.Errorf("revoked token checks out: %v", err)
	}
	if _, err := s.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{Token: short.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	list, err = s.ListAPITokens(ctx, &berthv1.ListAPITokensRequest{})
	if err != nil || len(list.GetTokens()) != 0 {
		t.Fatalf("after revoking both: ListAPITokens = %v, %v; want none", list.GetTokens(), err)
	}
}

func TestAPITokenRequestErrors(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	now := time.Now()
	if _, err := s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "ci"}, now); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() (proto.Message, error)
		want codes.Code
	}{
		{"create without a name", func() (proto.Message, error) {
			return s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "  "}, now)
		}, codes.InvalidArgument},
		{"create with a negative ttl", func() (proto.Message, error) {
			return s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "x", Ttl: durationpb.New(-time.Second)}, now)
		}, codes.InvalidArgument},
		{"create a taken name", func() (proto.Message, error) {
			return s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "ci"}, now)
		}, codes.AlreadyExists},
		{"revoke nothing", func() (proto.Message, error) {
			return s.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{})
		}, codes.InvalidArgument},
		{"revoke an unknown token", func() (proto.Message, error) {
			return s.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{Token: "nope"})
		}, codes.NotFound},
	}
	for _, c := range cases {
		if _, err := c.call(); status.Code(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	// An expired token's name is free again.
	if _, err := s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "brief", Ttl: durationpb.New(time.Minute)}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.createAPIToken(ctx, &berthv1.CreateAPITokenRequest{Name: "brief"}, now.Add(time.Minute)); err != nil {
		t.Errorf("re-using an expired token's name: %v", err)
	}
}
