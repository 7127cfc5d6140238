package cli

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// tokenCluster answers the API token calls and records them.
type tokenCluster struct {
	berthv1.UnimplementedClusterServiceServer

	mu      sync.Mutex
	creates []*berthv1.CreateAPITokenRequest
	revokes []string
}

func (f *tokenCluster) CreateAPIToken(_ context.Context, req *berthv1.CreateAPITokenRequest) (*berthv1.CreateAPITokenResponse, error) {
	f.mu.Lock()
	f.creates = append(f.creates, req)
	f.mu.Unlock()
	tok := &berthv1.APIToken{Id: "t1", Name: req.Name, CreatedAt: timestamppb.Now()}
	if req.Ttl != nil {
		tok.ExpiresAt = timestamppb.New(time.Now().Add(req.Ttl.AsDuration()))
	}
	return &berthv1.CreateAPITokenResponse{Token: tok, Secret: "berth_t1.secret"}, nil
}

func (f *tokenCluster) ListAPITokens(context.Context, *berthv1.ListAPITokensRequest) (*berthv1.ListAPITokensResponse, error) {
	created := timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return &berthv1.ListAPITokensResponse{Tokens: []*berthv1.APIToken{
		{Id: "t1", Name: "ci", CreatedAt: created},
		{Id: "t2", Name: "old", CreatedAt: created, ExpiresAt: timestamppb.New(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))},
	}}, nil
}

func (f *tokenCluster) RevokeAPIToken(_ context.Context, req *berthv1.RevokeAPITokenRequest) (*berthv1.RevokeAPITokenResponse, error) {
	f.mu.Lock()
	f.revokes = append(f.revokes, req.Token)
	f.mu.Unlock()
	if req.Token != "ci" {
		return nil, status.Errorf(codes.NotFound, "no API token has the name or id %q", req.Token)
	}
	return &berthv1.RevokeAPITokenResponse{}, nil
}

func TestTokenCommands(t *testing.T) {
	f := &tokenCluster{}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "token", "create", "ci", "--ttl", "1h")
	if !strings.Contains(r.stdout, "berth_t1.secret") || !strings.Contains(r.stdout, "expires") {
		t.Errorf("token create:\n%s", r.stdout)
	}
	if len(f.creates) != 1 || f.creates[0].Name != "ci" || f.creates[0].Ttl.AsDuration() != time.Hour {
		t.Errorf("token create sent %v", f.creates)
	}
	if r := mustRun(t, cfg, "token", "create", "x", "-q"); r.stdout != "berth_t1.secret\n" {
		t.Errorf("token create -q printed %q, want the secret alone", r.stdout)
	}
	if r := run(t, cfg, nil, "token", "create", "x", "--ttl", "-1h"); r.code == 0 || !strings.Contains(r.stderr, "negative") {
		t.Errorf("token create --ttl -1h: exit %d, %q", r.code, r.stderr)
	}

	r = mustRun(t, cfg, "token", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "never") || !strings.Contains(lines[2], "(expired)") {
		t.Errorf("token ls:\n%s", r.stdout)
	}
	if r := mustRun(t, cfg, "token", "ls", "-o", "json"); !strings.Contains(r.stdout, `"expired": true`) {
		t.Errorf("token ls -o json:\n%s", r.stdout)
	}

	if r := mustRun(t, cfg, "token", "revoke", "ci"); r.stdout != "API token ci revoked\n" {
		t.Errorf("token revoke: %q", r.stdout)
	}
	if r := run(t, cfg, nil, "token", "revoke", "nope"); r.code == 0 || !strings.Contains(r.stderr, `no API token has the name or id "nope"`) {
		t.Errorf("token revoke of an unknown token: exit %d, %q", r.code, r.stderr)
	}
}
