package apiserver

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestAuditFiltersByPrincipalNamespaceAndTime(t *testing.T) {
	c := newBuildCluster(t)
	st := c.srv.cfg.Store
	now := time.Now()
	for _, r := range []*berthv1.AuditRecord{
		{Id: "", Time: timestamppb.New(now.Add(-25 * time.Hour)), Principal: "user/alice", Namespace: "team-a", Target: "too old"},
		{Time: timestamppb.New(now.Add(-3 * time.Hour)), Principal: "user/alice", Namespace: "team-a", Target: "a1"},
		{Time: timestamppb.New(now.Add(-2 * time.Hour)), Principal: "token/alice", Namespace: "team-b", Target: "a2"},
		{Time: timestamppb.New(now.Add(-90 * time.Minute)), Principal: "user/bob", Namespace: "team-a", Target: "b1"},
		{Time: timestamppb.New(now.Add(-time.Hour)), Principal: "admin/root", Target: "n1"},
	} {
		if err := st.PutAudit(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		req  *berthv1.AuditRequest
		want []string
	}{
		{"the last day by default", &berthv1.AuditRequest{}, []string{"a1", "a2", "b1", "n1"}},
		{"since", &berthv1.AuditRequest{Since: timestamppb.New(now.Add(-26 * time.Hour))}, []string{"too old", "a1", "a2", "b1", "n1"}},
		{"exact principal", &berthv1.AuditRequest{Principal: "user/alice"}, []string{"a1"}},
		{"bare name of any kind", &berthv1.AuditRequest{Principal: "alice"}, []string{"a1", "a2"}},
		{"no such principal", &berthv1.AuditRequest{Principal: "user/carol"}, nil},
		{"namespace", &berthv1.AuditRequest{Namespace: "team-a"}, []string{"a1", "b1"}},
		{"both", &berthv1.AuditRequest{Namespace: "team-a", Principal: "alice"}, []string{"a1"}},
		{"the most recent", &berthv1.AuditRequest{Limit: 2}, []string{"b1", "n1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := c.client.Audit(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				r, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r.Target)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuditFollowSendsNewRecords(t *testing.T) {
	c := newBuildCluster(t)
	st := c.srv.cfg.Store
	if err := st.PutAudit(t.Context(), &berthv1.AuditRecord{Principal: "user/alice", Target: "before"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stream, err := c.client.Audit(ctx, &berthv1.AuditRequest{Principal: "alice", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("Audit: %v", err)
		}
		return r.Target
	}
	if got := next(); got != "before" {
		t.Fatalf("first %q, want %q", got, "before")
	}
	for _, r := range []*berthv1.AuditRecord{{Principal: "user/bob", Target: "bob's"}, {Principal: "token/alice", Target: "after"}} {
		if err := st.PutAudit(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if got := next(); got != "after" {
		t.Fatalf("next %q, want %q (bob's record filtered out)", got, "after")
	}
}
