package cli

import (
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestNodeAvailability(t *testing.T) {
	tests := []struct {
		verb  string
		nodes []string
		want  berthv1.NodeAvailability
		out   string
	}{
		// testTasks puts a running task and a failed one on node-1: only
		// the running one moves.
		{"drain", []string{"node-1"}, berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN,
			"node-1 drained: 1 task moving to other nodes (follow them with `berth ps --node node-1`)\n"},
		{"drain", []string{"n2bbbbbbbbbbbbbbbb"}, berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN,
			"node-2 drained: 1 task moving to other nodes (follow them with `berth ps --node node-2`)\n"},
		{"pause", []string{"node-1", "node-2"}, berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE,
			"node-1 paused: its tasks keep running; no new task is placed on it\nnode-2 paused: its tasks keep running; no new task is placed on it\n"},
		{"activate", []string{"node-2"}, berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
			"node-2 active: new tasks can be placed on it; tasks that moved away stay where they are (`berth rebalance` spreads them)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.verb+" "+strings.Join(tt.nodes, " "), func(t *testing.T) {
			f := newOpsCluster(false)
			cfg := serve(t, f)
			r := mustRun(t, cfg, append([]string{"node", tt.verb}, tt.nodes...)...)
			if r.stdout != tt.out {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.out)
			}
			if len(f.nodeReqs) != len(tt.nodes) {
				t.Fatalf("%d UpdateNode calls, want %d", len(f.nodeReqs), len(tt.nodes))
			}
			for i, req := range f.nodeReqs {
				if req.Node != tt.nodes[i] || req.Availability != tt.want || len(req.SetLabels) != 0 || len(req.RemoveLabels) != 0 {
					t.Errorf("request %d = %v", i, req)
				}
			}
		})
	}
}

func TestNodeDrainDrainedNodeAndUnknownNode(t *testing.T) {
	f := newOpsCluster(false)
	f.tasks = nil
	cfg := serve(t, f)
	r := mustRun(t, cfg, "node", "drain", "node-1")
	if r.stdout != "node-1 drained: no task runs on it; no new task is placed on it\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	r = run(t, cfg, nil, "node", "drain", "nope", "node-2")
	if r.code == 0 || !strings.Contains(r.stderr, `berth: update node nope: node "nope" not found`) ||
		!strings.Contains(r.stderr, "berth: 1 of 2 nodes were not updated") || !strings.Contains(r.stdout, "node-2 drained") {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestNodeLabel(t *testing.T) {
	f := newOpsCluster(false)
	cfg := serve(t, f)
	r := mustRun(t, cfg, "node", "label", "node-1", "rack=r7", "tier=", "disk-")
	if r.stdout != "node-1 labels: rack=r7,tier=,zone=eu (set by operators: rack=r7,tier=)\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	req := f.nodeReqs[0]
	if req.Node != "node-1" || len(req.SetLabels) != 2 || req.SetLabels["rack"] != "r7" || req.SetLabels["tier"] != "" ||
		strings.Join(req.RemoveLabels, ",") != "disk" || req.Availability != berthv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED {
		t.Errorf("request = %v", req)
	}
}

func TestNodeLabelBadInput(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"node-1", "zone"}, `label "zone": write KEY=VALUE to set a label, KEY- to remove one`},
		{[]string{"node-1", "=eu"}, `label "=eu" has no key`},
		{[]string{"node-1", "-"}, `label "-": write KEY=VALUE`},
		{[]string{"node-1"}, "requires at least 2 arg(s)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f := newOpsCluster(false)
			cfg := serve(t, f)
			r := run(t, cfg, nil, append([]string{"node", "label"}, tt.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want it to contain %q", r.code, r.stderr, tt.want)
			}
			if len(f.nodeReqs) != 0 {
				t.Errorf("UpdateNode called despite bad input")
			}
		})
	}
}

func TestNodeLsStillWorks(t *testing.T) {
	cfg := serve(t, newOpsCluster(false))
	r := mustRun(t, cfg, "node", "ls")
	if !strings.Contains(r.stdout, "node-1") || !strings.Contains(r.stdout, "node-2") {
		t.Errorf("node ls = %q", r.stdout)
	}
}

func TestDownNodesLine(t *testing.T) {
	for _, tc := range []struct {
		resp *berthv1.MarkNodesDownResponse
		want string
	}{
		{&berthv1.MarkNodesDownResponse{Nodes: []*berthv1.Node{{Name: "node-3"}}}, "node-3 down"},
		{&berthv1.MarkNodesDownResponse{Nodes: []*berthv1.Node{{Name: "node-3"}, {Name: "node-4"}}, Tasks: 5}, "node-3, node-4 down: 5 tasks moving to other nodes"},
	} {
		if got := downNodesLine(tc.resp); got != tc.want {
			t.Errorf("downNodesLine = %q, want %q", got, tc.want)
		}
	}
}
