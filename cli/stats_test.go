package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc"
)

func TestStatsCommand(t *testing.T) {
	f := &topCluster{
		fakeCluster: &fakeCluster{
			nodes: []*berthv1.Node{{Meta: &berthv1.Meta{Id: "n1"}, Name: "alpha"}},
			tasks: []*berthv1.Task{
				{Meta: &berthv1.Meta{Id: "0123456789abcdef"}, App: "shop", Service: "web", Slot: 2},
				{Meta: &berthv1.Meta{Id: "fedcba9876543210"}, App: "shop", Service: "agent"},
			},
		},
		resp: &berthv1.TopResponse{
			Tasks: []*berthv1.TaskStats{
				{TaskId: "0123456789abcdef", NodeId: "n1", CpuPercent: 12.34, MemoryBytes: 16 << 20, MemoryLimitBytes: 64 << 20, Pids: 4,
					NetworkRxBytes: 1536, NetworkTxBytes: 3 << 20, NetworkRxBytesPerSecond: 10},
				{TaskId: "fedcba9876543210", NodeId: "n1", MemoryBytes: 1 << 20, Pids: 1},
			},
			Unreachable: []string{"beta"},
		},
	}
	cfg := serve(t, f)

	// Standard output is no terminal here: one snapshot, with or without
	// --no-stream.
	for _, args := range [][]string{{"stats", "shop", "--node", "alpha"}, {"stats", "shop", "--node", "alpha", "--no-stream"}} {
		r := mustRun(t, cfg, args...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "TASK NAME NODE CPU % MEM USAGE / LIMIT MEM % NET I/O (RX / TX) PIDS" {
			t.Fatalf("berth %s: table:\n%s", strings.Join(args, " "), r.stdout)
		}
		want := []string{shortID("0123456789abcdef"), "shop/web.2", "alpha", "12.3%", "16MiB", "/", "64MiB", "25.0%", "1.5KiB", "/", "3MiB", "4"}
		if got := strings.Fields(lines[1]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %q, want %q", got, want)
		}
		want = []string{shortID("fedcba9876543210"), "shop/agent", "alpha", "0.0%", "1MiB", "/", "-", "-", "0B", "/", "0B", "1"}
		if got := strings.Fields(lines[2]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row of a task without a limit or traffic %q, want %q", got, want)
		}
		if !strings.Contains(r.stderr, "node beta did not answer") {
			t.Errorf("stderr %q, want the unreachable node named", r.stderr)
		}
	}
	if req := f.reqs[0]; req.App != "shop" || req.Service != "" || req.NodeId != "alpha" {
		t.Errorf("request %v, want app shop on alpha", req)
	}

	r := mustRun(t, cfg, "stats", "-o", "json")
	var rows []topRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("JSON output %q: %v", r.stdout, err)
	}
	if len(rows) != 2 || rows[0].NetworkRxBytes != 1536 || rows[0].NetworkTxBytes != 3<<20 || rows[0].NetworkRxBytesPerSecond != 10 {
		t.Errorf("JSON rows %+v, want the network bytes and rates", rows)
	}
}

func TestStatsUsage(t *testing.T) {
	cfg := serve(t, &topCluster{fakeCluster: &fakeCluster{}, resp: &berthv1.TopResponse{}})
	for _, args := range [][]string{{"stats", "a", "b"}, {"stats", "--no-stream=maybe"}, {"stats", "/web"}} {
		if r := run(t, cfg, nil, args...); r.code == 0 {
			t.Errorf("berth %s succeeded, want a usage error", strings.Join(args, " "))
		}
	}
}

// listingClient answers the listings topJoin makes, counting the task
// listings.
type listingClient struct {
	berthv1.ClusterServiceClient
	tasks    []*berthv1.Task
	listings int
}

func (l *listingClient) ListTasks(context.Context, *berthv1.ListTasksRequest, ...grpc.CallOption) (*berthv1.ListTasksResponse, error) {
	l.listings++
	return &berthv1.ListTasksResponse{Tasks: l.tasks}, nil
}

func (l *listingClient) ListNodes(context.Context, *berthv1.ListNodesRequest, ...grpc.CallOption) (*berthv1.ListNodesResponse, error) {
	return &berthv1.ListNodesResponse{}, nil
}

// A refreshing view lists the tasks once, and again only for a task it
// has not seen.
func TestTopJoinListsTasksOnlyForNewOnes(t *testing.T) {
	l := &listingClient{tasks: []*berthv1.Task{{Meta: &berthv1.Meta{Id: "t1"}, App: "shop", Service: "web"}}}
	j := &topJoin{c: &cluster{ClusterServiceClient: l}}
	one := &berthv1.TopResponse{Tasks: []*berthv1.TaskStats{{TaskId: "t1"}}}
	for range 3 {
		if _, err := j.rows(context.Background(), one); err != nil {
			t.Fatal(err)
		}
	}
	l.tasks = append(l.tasks, &berthv1.Task{Meta: &berthv1.Meta{Id: "t2"}, App: "shop", Service: "web"}) // a new task starts
	two := &berthv1.TopResponse{Tasks: []*berthv1.TaskStats{{TaskId: "t1"}, {TaskId: "t2"}}}
	rows, err := j.rows(context.Background(), two)
	if err != nil {
		t.Fatal(err)
	}
	if l.listings != 2 {
		t.Errorf("tasks listed %d times over four refreshes, want 2 (the first, and for the new task)", l.listings)
	}
	if len(rows) != 2 || rows[1].Service != "web" {
		t.Errorf("rows %+v", rows)
	}
}
