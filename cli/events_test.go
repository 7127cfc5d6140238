package cli

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// eventsCluster is a fakeCluster that also answers ListEvents from its
// events, filtered by app, service, task and node as the server does, and
// records the requests.
type eventsCluster struct {
	*fakeCluster
	events []*berthv1.Event

	mu   sync.Mutex
	reqs []*berthv1.ListEventsRequest
}

func (f *eventsCluster) ListEvents(_ context.Context, req *berthv1.ListEventsRequest) (*berthv1.ListEventsResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	var out []*berthv1.Event
	for _, ev := range f.events {
		a := ev.GetAttributes()
		if (req.App == "" || a["app"] == req.App) && (req.Service == "" || a["service"] == req.Service) &&
			(req.TaskId == "" || a["task"] == req.TaskId) &&
			(req.NodeId == "" || a["node"] == req.NodeId || (ev.Kind == "node" && ev.ObjectId == req.NodeId)) {
			out = append(out, ev)
		}
	}
	return &berthv1.ListEventsResponse{Events: out}, nil
}

func (f *eventsCluster) lastRequest(t *testing.T) *berthv1.ListEventsRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("no ListEvents request")
	}
	return f.reqs[len(f.reqs)-1]
}

const (
	failedTaskID = "tfailed0123456789abcdef"
	node1ID      = "n1aaaaaaaaaaaaaaaa"
)

func testEventTasks(now time.Time) []*berthv1.Task {
	return []*berthv1.Task{
		{
			Meta: &berthv1.Meta{Id: failedTaskID}, Namespace: "default", App: "shop", Service: "web", Slot: 1, NodeId: node1ID,
			DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
			Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 137, Err: "task: non-zero exit (137)",
				Timestamp: timestamppb.New(now.Add(-time.Minute))},
			History: []*berthv1.StateTransition{
				{State: berthv1.TaskState_TASK_STATE_RUNNING, At: timestamppb.New(now.Add(-2 * time.Minute))},
				{State: berthv1.TaskState_TASK_STATE_FAILED, At: timestamppb.New(now.Add(-time.Minute))},
			},
		},
		{
			Meta: &berthv1.Meta{Id: "treplacement0123456789"}, Namespace: "default", App: "shop", Service: "web", Slot: 1, NodeId: node1ID,
			DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
			Status:       &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING, Timestamp: timestamppb.New(now.Add(-50 * time.Second))},
		},
	}
}

func testEvents(now time.Time) []*berthv1.Event {
	task := func(action, msg string, ago time.Duration) *berthv1.Event {
		return &berthv1.Event{
			At: timestamppb.New(now.Add(-ago)), Kind: "task", ObjectId: failedTaskID, Action: action, Message: msg,
			Attributes: map[string]string{"namespace": "default", "app": "shop", "service": "web", "slot": "1", "task": failedTaskID, "node": node1ID},
		}
	}
	return []*berthv1.Event{
		{At: timestamppb.New(now.Add(-3 * time.Minute)), Kind: "app", ObjectId: "default/shop", Action: "apply", Message: "1 created",
			Attributes: map[string]string{"namespace": "default", "app": "shop"}},
		{At: timestamppb.New(now.Add(-2 * time.Minute)), Kind: "node", ObjectId: node1ID, Action: "connect", Message: "agent of node-1 connected"},
		task("fail", "task web.1 failed on node node-1: exit code 137", time.Minute),
		task("replace", "replacing task web.1: it failed on node node-1: exit code 137", time.Minute-time.Millisecond),
	}
}

func newEventsCluster() *eventsCluster {
	now := time.Now()
	return &eventsCluster{
		fakeCluster: &fakeCluster{nodes: testNodes(), services: testServices(), tasks: testEventTasks(now)},
		events:      testEvents(now),
	}
}

func TestEventsTable(t *testing.T) {
	f := newEventsCluster()
	cfg := serve(t, f)
	r := mustRun(t, cfg, "events")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 || strings.Join(strings.Fields(lines[0]), " ") != "TIME KIND OBJECT ACTION MESSAGE" {
		t.Fatalf("want a header and 4 events:\n%s", r.stdout)
	}
	// Oldest first, newest last; objects named for people.
	wants := []string{"app shop apply 1 created", "node node-1 connect", "task shop/web.1 fail task web.1 failed on node node-1: exit code 137", "task shop/web.1 replace"}
	for i, want := range wants {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); !strings.Contains(got, want) {
			t.Errorf("line %d = %q, want it to contain %q", i+1, got, want)
		}
	}
}

func TestEventsRequest(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(*berthv1.ListEventsRequest) bool
	}{
		{"app", []string{"events", "shop"}, func(r *berthv1.ListEventsRequest) bool {
			return r.App == "shop" && r.Service == "" && r.Namespace == "default" && r.Limit == 100
		}},
		{"service and namespace", []string{"events", "shop/web", "-n", "team"}, func(r *berthv1.ListEventsRequest) bool {
			return r.App == "shop" && r.Service == "web" && r.Namespace == "team"
		}},
		{"node by name", []string{"events", "--node", "node-1"}, func(r *berthv1.ListEventsRequest) bool { return r.NodeId == node1ID }},
		{"since a duration", []string{"events", "--since", "10m", "--limit", "5"}, func(r *berthv1.ListEventsRequest) bool {
			d := time.Since(r.Since.AsTime())
			return r.Limit == 5 && d >= 10*time.Minute && d < 11*time.Minute
		}},
		{"since a time", []string{"events", "--since", "2030-01-02T03:04:05Z"}, func(r *berthv1.ListEventsRequest) bool {
			return r.Since.AsTime().Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEventsCluster()
			mustRun(t, serve(t, f), tt.args...)
			if req := f.lastRequest(t); !tt.check(req) {
				t.Errorf("request %v", req)
			}
		})
	}
}

func TestEventsJSON(t *testing.T) {
	cfg := serve(t, newEventsCluster())
	r := mustRun(t, cfg, "events", "shop/web", "-o", "json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%s", err, r.stdout)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d events, want the service's 2:\n%s", len(rows), r.stdout)
	}
	for _, k := range []string{"time", "kind", "objectId", "object", "action", "message", "attributes"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("JSON lacks %q: %v", k, rows[0])
		}
	}
	if rows[0]["object"] != "shop/web.1" || rows[0]["attributes"].(map[string]any)["node"] != node1ID {
		t.Errorf("first row %v", rows[0])
	}
}

func TestEventsAndDescribeErrors(t *testing.T) {
	cfg := serve(t, newEventsCluster())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"events", "--since", "yesterday"}, "neither a duration"},
		{[]string{"events", "--node", "nope"}, `no node named "nope"`},
		{[]string{"describe", "shop"}, "names an app"},
		{[]string{"describe", "shop/nope"}, `no service "shop/nope"`},
		{[]string{"describe", "task", "zzzz"}, `no task "zzzz"`},
		{[]string{"describe", "task", "tre"}, ""}, // a unique prefix is fine
		{[]string{"describe", "task", "t"}, `no task "t"`},
	}
	for _, tt := range tests {
		r := run(t, cfg, nil, tt.args...)
		if tt.want == "" {
			if r.code != 0 {
				t.Errorf("berth %s: exit %d: %s", strings.Join(tt.args, " "), r.code, r.stderr)
			}
			continue
		}
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("berth %s: exit %d, stderr %q, want an error with %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // in this order
		req  func(*berthv1.ListEventsRequest) bool
	}{
		{"service", []string{"describe", "shop/web"},
			[]string{"Name:", "shop/web", "Image:", "shop/web:1", "Replicas:", "2 running / 3 desired", "Tasks:", "tfailed01234", "failed", "task: non-zero exit (137)",
				"Events:", "fail", "exit code 137", "replace"},
			func(r *berthv1.ListEventsRequest) bool { return r.App == "shop" && r.Service == "web" }},
		{"service, spelled out", []string{"describe", "service", "shop/web"}, []string{"Name:", "shop/web", "Events:", "replace"},
			func(r *berthv1.ListEventsRequest) bool { return r.App == "shop" && r.Service == "web" }},
		{"task by prefix", []string{"describe", "task", "tfailed"},
			[]string{"ID:", failedTaskID, "Service:", "shop/web", "Node:", "node-1", "State:", "failed", "Exit code:", "137", "History:", "running", "failed",
				"Events:", "fail", "replace"},
			func(r *berthv1.ListEventsRequest) bool { return r.TaskId == failedTaskID }},
		{"node", []string{"describe", "node", "node-1"},
			[]string{"Name:", "node-1", "Status:", "ready", "CPU:", "2", "Tasks:", "shop/web", "Events:", "connect", "fail"},
			func(r *berthv1.ListEventsRequest) bool { return r.NodeId == node1ID }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEventsCluster()
			r := mustRun(t, serve(t, f), tt.args...)
			rest := r.stdout
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, r.stdout)
				}
				rest = rest[i+len(w):]
			}
			if req := f.lastRequest(t); !tt.req(req) {
				t.Errorf("events request %v", req)
			}
		})
	}
}
