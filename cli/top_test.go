package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// topCluster is a fakeCluster whose Top answers resp.
type topCluster struct {
	*fakeCluster
	resp *berthv1.TopResponse
	reqs []*berthv1.TopRequest
}

func (f *topCluster) Top(_ context.Context, req *berthv1.TopRequest) (*berthv1.TopResponse, error) {
	f.record(func() { f.reqs = append(f.reqs, req) })
	return f.resp, nil
}

func TestTopCommand(t *testing.T) {
	f := &topCluster{
		fakeCluster: &fakeCluster{
			nodes: []*berthv1.Node{{Meta: &berthv1.Meta{Id: "n1"}, Name: "alpha"}},
			tasks: []*berthv1.Task{{Meta: &berthv1.Meta{Id: "0123456789abcdef"}, App: "shop", Service: "web", Slot: 2}},
		},
		resp: &berthv1.TopResponse{
			Tasks: []*berthv1.TaskStats{{TaskId: "0123456789abcdef", NodeId: "n1", CpuPercent: 12.34,
				MemoryBytes: 3 << 20, MemoryLimitBytes: 64 << 20, Pids: 4}},
			Unreachable: []string{"beta"},
		},
	}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "top", "shop/web", "--node", "alpha")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "TASK SERVICE.SLOT NODE CPU % MEM MEM LIMIT PIDS" {
		t.Fatalf("table:\n%s", r.stdout)
	}
	if got, want := strings.Fields(lines[1]), []string{shortID("0123456789abcdef"), "shop/web.2", "alpha", "12.3", "3MiB", "64MiB", "4"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("row %q, want %q", got, want)
	}
	if !strings.Contains(r.stderr, "node beta did not answer") {
		t.Errorf("stderr %q, want the unreachable node named", r.stderr)
	}
	if req := f.reqs[0]; req.App != "shop" || req.Service != "web" || req.NodeId != "alpha" || req.Namespace != "default" {
		t.Errorf("request %v, want shop/web on alpha in default", req)
	}

	r = mustRun(t, cfg, "top", "-o", "json")
	var rows []topRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("JSON output %q: %v", r.stdout, err)
	}
	if len(rows) != 1 || rows[0].Task != "0123456789abcdef" || rows[0].MemoryBytes != 3<<20 || rows[0].Node != "alpha" || rows[0].Slot != 2 {
		t.Errorf("JSON rows %+v", rows)
	}
}
