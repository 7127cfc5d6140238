package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func testNodes() []*berthv1.Node {
	return []*berthv1.Node{
		{
			Meta: &berthv1.Meta{Id: "n1aaaaaaaaaaaaaaaa"}, Name: "node-1", Address: "127.0.0.1:7001",
			Status: berthv1.NodeStatus_NODE_STATUS_READY, Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
			Labels:   map[string]string{"zone": "eu", "disk": "ssd"},
			Capacity: &berthv1.Resources{MilliCpus: 2000, MemoryBytes: 8 << 30}, AgentVersion: "v0.4.1",
		},
		{
			Meta: &berthv1.Meta{Id: "n2bbbbbbbbbbbbbbbb"}, Name: "node-2", Address: "127.0.0.1:7002",
			Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN,
			Capacity: &berthv1.Resources{MilliCpus: 1500, MemoryBytes: 512 << 20},
		},
	}
}

func testTasks(now time.Time) []*berthv1.Task {
	running := berthv1.TaskState_TASK_STATE_RUNNING
	return []*berthv1.Task{
		{
			Meta: &berthv1.Meta{Id: "task-web-2-0123456789"}, App: "shop", Service: "web", Slot: 2, NodeId: "n2bbbbbbbbbbbbbbbb",
			DesiredState: running,
			Status:       &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_PENDING, Timestamp: timestamppb.New(now.Add(-5 * time.Second)), Message: "no suitable node (insufficient memory on 2 nodes)"},
		},
		{
			Meta: &berthv1.Meta{Id: "task-web-1-0123456789"}, App: "shop", Service: "web", Slot: 1, NodeId: "n1aaaaaaaaaaaaaaaa",
			DesiredState: running,
			Status: &berthv1.TaskStatus{
				State: running, Timestamp: timestamppb.New(now.Add(-12 * time.Second)), Message: "started",
				Ports: []*berthv1.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp"}},
			},
			Networks: []*berthv1.TaskNetwork{
				{NetworkId: "net-shop", Network: "shop_default", Address: "10.10.0.5/24"},
				{NetworkId: "net-shared", Network: "shared", Address: "10.20.0.2/24"},
			},
		},
		{
			Meta: &berthv1.Meta{Id: "task-api-1-0123456789"}, App: "admin", Service: "api", Slot: 1, NodeId: "n1aaaaaaaaaaaaaaaa",
			DesiredState: berthv1.TaskState_TASK_STATE_SHUTDOWN,
			Status:       &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, Timestamp: timestamppb.New(now.Add(-3 * time.Minute)), Err: "exit status 2", ExitCode: 2},
		},
	}
}

func TestPsTable(t *testing.T) {
	cfg := serve(t, &fakeCluster{nodes: testNodes(), tasks: testTasks(time.Now())})
	r := mustRun(t, cfg, "ps")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("ps printed %d lines, want header and 3 tasks:\n%s", len(lines), r.stdout)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "ID SERVICE SLOT NODE STATE DESIRED SINCE PORTS ERROR" {
		t.Errorf("header = %q", lines[0])
	}
	// Sorted by app, service, slot.
	wants := [][]string{
		{"task-api-1-0", "admin/api", "1", "node-1", "failed", "shutdown", "ago", "exit status 2"},
		{"task-web-1-0", "shop/web", "1", "node-1", "running", "running", "12s ago", "8080->80/tcp"},
		{"task-web-2-0", "shop/web", "2", "node-2", "pending", "running", "ago", "no suitable node (insufficient memory on 2 nodes)"},
	}
	for i, want := range wants {
		line := lines[i+1]
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("row %d = %q, want it to contain %q", i+1, line, w)
			}
		}
	}
	if strings.Contains(lines[2], "started") {
		t.Errorf("running task shows its message in ERROR: %q", lines[2])
	}
}

func TestPsJSON(t *testing.T) {
	now := time.Now()
	cfg := serve(t, &fakeCluster{nodes: testNodes(), tasks: testTasks(now)})
	r := mustRun(t, cfg, "ps", "shop", "-o", "json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("ps -o json is not a JSON array: %v\n%s", err, r.stdout)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d tasks, want the 2 of app shop", len(rows))
	}
	for _, key := range []string{"id", "app", "service", "slot", "node", "nodeId", "state", "desiredState", "since", "error", "message", "ports"} {
		if _, ok := rows[0][key]; !ok {
			t.Errorf("task JSON lacks %q: %v", key, rows[0])
		}
	}
	first, second := rows[0], rows[1]
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"id", first["id"], "task-web-1-0123456789"},
		{"app", first["app"], "shop"},
		{"service", first["service"], "web"},
		{"slot", first["slot"], float64(1)},
		{"node", first["node"], "node-1"},
		{"nodeId", first["nodeId"], "n1aaaaaaaaaaaaaaaa"},
		{"state", first["state"], "running"},
		{"desiredState", first["desiredState"], "running"},
		{"since", first["since"], now.Add(-12 * time.Second).UTC().Format(time.RFC3339)},
		{"second state", second["state"], "pending"},
		{"second message", second["message"], "no suitable node (insufficient memory on 2 nodes)"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	ports, _ := first["ports"].([]any)
	if len(ports) != 1 {
		t.Fatalf("ports = %v, want one", first["ports"])
	}
	p := ports[0].(map[string]any)
	if p["target"] != float64(80) || p["published"] != float64(8080) || p["protocol"] != "tcp" {
		t.Errorf("port = %v, want 8080->80/tcp", p)
	}
}

func TestPsRequest(t *testing.T) {
	f := &fakeCluster{nodes: testNodes()}
	cfg := serve(t, f)
	mustRun(t, cfg, "ps", "shop/web", "--all", "--node", "node-2", "-n", "team-a")
	if len(f.taskReqs) != 1 {
		t.Fatalf("ListTasks called %d times, want 1", len(f.taskReqs))
	}
	got := f.taskReqs[0]
	if got.Namespace != "team-a" || got.App != "shop" || got.Service != "web" || got.NodeId != "n2bbbbbbbbbbbbbbbb" || !got.All {
		t.Errorf("ListTasks request = %v", got)
	}
}

func TestPsRejectsBadInput(t *testing.T) {
	cfg := serve(t, &fakeCluster{nodes: testNodes()})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad output", []string{"ps", "-o", "xml"}, `unknown output format "xml"`},
		{"bad target", []string{"ps", "a/b/c"}, `"a/b/c" is not APP or APP/SERVICE`},
		{"unknown node", []string{"ps", "--node", "nope"}, `no node named "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, cfg, nil, tt.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want failure mentioning %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestPsShowsWhatAPendingTaskWaitsFor(t *testing.T) {
	now := time.Now()
	tasks := []*berthv1.Task{
		{
			Meta: &berthv1.Meta{Id: "task-web-1-0123456789"}, App: "shop", Service: "web", Slot: 1,
			DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
			Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_PENDING, Timestamp: timestamppb.New(now.Add(-3 * time.Hour)),
				Message: "waiting for db (healthy), migrate (completed successfully)"},
		},
		{
			Meta: &berthv1.Meta{Id: "task-api-1-0123456789"}, App: "shop", Service: "api", Slot: 1,
			DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
			Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_PENDING, Timestamp: timestamppb.New(now.Add(-3 * time.Hour)),
				Message: "migrate failed (exit code 1)"},
		},
	}
	cfg := serve(t, &fakeCluster{nodes: testNodes(), tasks: tasks})

	// Not placed yet: no node, and the reason in the last column.
	table := mustRun(t, cfg, "ps", "shop").stdout
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	wantRows := [][]string{
		{"task-api-1-0", "shop/api", "1", "-", "pending", "running", "3h", "ago", "migrate", "failed", "(exit", "code", "1)"},
		{"task-web-1-0", "shop/web", "1", "-", "pending", "running", "3h", "ago", "waiting", "for", "db", "(healthy),", "migrate", "(completed", "successfully)"},
	}
	if len(lines) != len(wantRows)+1 {
		t.Fatalf("ps printed %d lines, want a header and %d tasks:\n%s", len(lines), len(wantRows), table)
	}
	for i, want := range wantRows {
		if got := strings.Fields(lines[i+1]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %d = %q, want %q", i+1, got, want)
		}
	}

	var rows []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, cfg, "ps", "shop", "-o", "json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(rows))
	}
	wants := []struct{ service, message string }{
		{"api", "migrate failed (exit code 1)"},
		{"web", "waiting for db (healthy), migrate (completed successfully)"},
	}
	for i, w := range wants {
		if rows[i]["service"] != w.service || rows[i]["state"] != "pending" || rows[i]["message"] != w.message {
			t.Errorf("row %d = %v, want %s pending with message %q", i, rows[i], w.service, w.message)
		}
	}
}

func TestPsStateColumn(t *testing.T) {
	tests := []struct {
		name   string
		status *berthv1.TaskStatus
		want   string
	}{
		{"plain", &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}, "running"},
		{"with health", &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING, Health: berthv1.Health_HEALTH_HEALTHY}, "running (healthy)"},
		{"non-zero exit", &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 137}, "failed"},
		{"oom killed", &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 137, OomKilled: true}, "failed (oom)"},
		{"oom killed with health", &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, OomKilled: true, Health: berthv1.Health_HEALTH_HEALTHY}, "failed (oom)"},
	}
	for _, tt := range tests {
		rows := taskRows([]*berthv1.Task{{Meta: &berthv1.Meta{Id: "t"}, Status: tt.status}}, nil, time.Now())
		if got := rows[0].stateColumn(); got != tt.want {
			t.Errorf("%s: state column = %q, want %q", tt.name, got, tt.want)
		}
	}
}
