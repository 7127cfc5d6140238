package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// auditCluster is a fakeCluster whose Audit sends its records and
// remembers the request.
type auditCluster struct {
	*fakeCluster
	records []*berthv1.AuditRecord
	req     *berthv1.AuditRequest
}

func (f *auditCluster) Audit(req *berthv1.AuditRequest, stream grpc.ServerStreamingServer[berthv1.AuditRecord]) error {
	f.record(func() { f.req = req })
	for _, r := range f.records {
		if err := stream.Send(r); err != nil {
			return err
		}
	}
	return nil
}

func (f *auditCluster) lastRequest() *berthv1.AuditRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.req
}

func newAuditCluster() *auditCluster {
	at := timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	return &auditCluster{fakeCluster: &fakeCluster{}, records: []*berthv1.AuditRecord{
		{Id: "1", Time: at, Principal: "user/alice", Role: "deployer", Method: "Apply", Namespace: "team-a", Target: "app shop", Code: "OK", Peer: "127.0.0.1:5000"},
		{Id: "2", Time: at, Principal: "token/ci", Role: "viewer", Method: "ScaleService", Namespace: "team-a", Target: "service shop/web", Code: "PermissionDenied", Message: "token/ci is a viewer", Peer: "127.0.0.1:5001"},
		{Id: "3", Time: at, Principal: "admin/root", Role: "admin", Method: "UpdateNode", Target: "node beta", Code: "OK"},
	}}
}

func TestAuditTable(t *testing.T) {
	r := mustRun(t, serve(t, newAuditCluster()), "audit")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "TIME WHO ROLE ACTION NAMESPACE TARGET RESULT" {
		t.Fatalf("want a header and 3 records:\n%s", r.stdout)
	}
	wants := []string{
		"user/alice deployer Apply team-a app shop OK",
		"token/ci viewer ScaleService team-a service shop/web PermissionDenied: token/ci is a viewer",
		"admin/root admin UpdateNode - node beta OK",
	}
	for i, want := range wants {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); !strings.HasSuffix(got, want) {
			t.Errorf("line %d = %q, want it to end with %q", i+1, got, want)
		}
	}
}

func TestAuditRequest(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(*berthv1.AuditRequest) bool
	}{
		{"defaults: every namespace, the server's window", []string{"audit"}, func(r *berthv1.AuditRequest) bool {
			return r.Namespace == "" && r.Since == nil && r.Principal == "" && r.Limit == 1000 && !r.Follow
		}},
		{"user, namespace and since", []string{"audit", "--user", "token/ci", "-n", "team-a", "--since", "2h"}, func(r *berthv1.AuditRequest) bool {
			d := time.Since(r.Since.AsTime())
			return r.Principal == "token/ci" && r.Namespace == "team-a" && d >= 2*time.Hour && d < 2*time.Hour+time.Minute
		}},
		{"since a time", []string{"audit", "--since", "2030-01-02T03:04:05Z"}, func(r *berthv1.AuditRequest) bool {
			return r.Since.AsTime().Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		}},
		{"follow", []string{"audit", "-f"}, func(r *berthv1.AuditRequest) bool { return r.Follow }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAuditCluster()
			mustRun(t, serve(t, f), tt.args...)
			if req := f.lastRequest(); req == nil || !tt.check(req) {
				t.Errorf("request %v", req)
			}
		})
	}
}

func TestAuditJSON(t *testing.T) {
	r := mustRun(t, serve(t, newAuditCluster()), "audit", "-o", "json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%s", err, r.stdout)
	}
	if len(rows) != 3 || rows[1]["principal"] != "token/ci" || rows[1]["code"] != "PermissionDenied" || rows[0]["peer"] != "127.0.0.1:5000" {
		t.Errorf("rows %v", rows)
	}
	// Followed, one object a line.
	r = mustRun(t, serve(t, newAuditCluster()), "audit", "-f", "-o", "json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one JSON object a line:\n%s", r.stdout)
	}
	for _, l := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
	}
}

func TestAuditUsageErrors(t *testing.T) {
	cfg := serve(t, newAuditCluster())
	for _, args := range [][]string{{"audit", "--since", "yesterday"}, {"audit", "extra"}} {
		if r := run(t, cfg, nil, args...); r.code != exitUsage {
			t.Errorf("berth %s: exit %d, want %d (%s)", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
}
