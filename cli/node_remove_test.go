package cli

import (
	"context"
	"strings"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// removeCluster answers RemoveNode: beta is connected, gamma is not.
type removeCluster struct {
	fakeCluster
	mu   sync.Mutex
	reqs []*berthv1.RemoveNodeRequest
}

func (f *removeCluster) RemoveNode(_ context.Context, req *berthv1.RemoveNodeRequest) (*berthv1.RemoveNodeResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if req.Node == "beta" && !req.Force {
		return nil, status.Error(codes.FailedPrecondition, "node beta is connected: stop its agent first, or add --force")
	}
	return &berthv1.RemoveNodeResponse{
		Node:          &berthv1.Node{Name: req.Node, CertificateSerial: "5e1"},
		Tasks:         2,
		PinnedVolumes: []string{"default/shop_data.1"},
	}, nil
}

func TestNodeRemove(t *testing.T) {
	f := &removeCluster{}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "node", "rm", "gamma")
	want := "gamma removed: its name is free and its certificate 5e1 is revoked; 2 tasks moving to other nodes\n" +
		"volumes default/shop_data.1 stay: their data is on that machine, and the tasks that mount them wait (berth volume rm --force NAME gives the data up)\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if r := run(t, cfg, nil, "node", "rm", "beta"); r.code == 0 || !strings.Contains(r.stderr, "add --force") {
		t.Errorf("rm of a connected node: exit %d, stderr %q", r.code, r.stderr)
	}
	mustRun(t, cfg, "node", "rm", "beta", "--force")
	if r := run(t, cfg, nil, "node", "rm"); r.code != exitUsage {
		t.Errorf("rm without a node: exit %d, want %d", r.code, exitUsage)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 3 || f.reqs[0].Force || !f.reqs[2].Force || f.reqs[2].Node != "beta" {
		t.Errorf("requests = %v", f.reqs)
	}
}

func TestJoinTokenUses(t *testing.T) {
	f := &fakeCluster{token: &berthv1.JoinTokenResponse{Token: "BERTH-TOKEN-1"}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "join-token", "--uses", "1")
	if !strings.Contains(r.stdout, "It admits 1 node, then it is used up.") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if got := f.tokenReqs[0]; got.Uses != 1 || got.Rotate {
		t.Errorf("request = %v", got)
	}
	if r := run(t, cfg, nil, "join-token", "--uses", "-1"); r.code != exitUsage {
		t.Errorf("--uses -1: exit %d, want %d", r.code, exitUsage)
	}
}
