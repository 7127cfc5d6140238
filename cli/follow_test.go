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

// watchCluster is an eventsCluster whose WatchEvents streams the events
// that match, then live, then ends the stream as a server that stops
// does.
type watchCluster struct {
	*eventsCluster
	live     []*berthv1.Event
	watchReq *berthv1.ListEventsRequest
}

func (f *watchCluster) WatchEvents(req *berthv1.ListEventsRequest, stream grpc.ServerStreamingServer[berthv1.Event]) error {
	f.record(func() { f.watchReq = req })
	history, _ := f.ListEvents(stream.Context(), req)
	for _, ev := range append(history.GetEvents(), f.live...) {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

func newWatchCluster() *watchCluster {
	f := &watchCluster{eventsCluster: newEventsCluster()}
	f.live = []*berthv1.Event{{
		At: timestamppb.Now(), Kind: "node", ObjectId: node1ID, Action: "down", Message: "node node-1 is down",
	}}
	return f
}

func TestEventsFollow(t *testing.T) {
	f := newWatchCluster()
	cfg := serve(t, f)
	r := mustRun(t, cfg, "events", "-f", "--since", "1h", "--node", "node-1")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != "TIME KIND OBJECT ACTION MESSAGE" {
		t.Fatalf("want the header first:\n%s", r.stdout)
	}
	// The node's history (its own events and its tasks'), then the new one.
	wants := []string{"node node-1 connect", "task shop/web.1 fail", "task shop/web.1 replace", "node node-1 down node node-1 is down"}
	if len(lines) != len(wants)+1 {
		t.Fatalf("got %d rows, want %d:\n%s", len(lines)-1, len(wants), r.stdout)
	}
	for i, want := range wants {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); !strings.Contains(got, want) {
			t.Errorf("row %d = %q, want it to contain %q", i+1, got, want)
		}
	}
	f.mu.Lock()
	req := f.watchReq
	f.mu.Unlock()
	if req.NodeId != node1ID || time.Since(req.Since.AsTime()) < time.Hour || req.Namespace != "default" {
		t.Errorf("WatchEvents request = %v, want node, since and namespace set", req)
	}
}

func TestEventsFollowJSONLines(t *testing.T) {
	r := mustRun(t, serve(t, newWatchCluster()), "events", "-f", "shop/web", "-o", "json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one JSON object a line for the service's 2 events and the new one:\n%s", r.stdout)
	}
	for _, l := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
	}
}

func TestLogsSinceAndTimestamps(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	f := &fakeCluster{
		nodes: testNodes(),
		tasks: testTasks(time.Now()),
		logs: []*berthv1.LogEntry{
			{TaskId: "task-web-2-0123456789", NodeId: "n2bbbbbbbbbbbbbbbb", Service: "web", Slot: 2, At: timestamppb.New(at), Line: []byte("known")},
			{TaskId: "task-web-2-0123456789", NodeId: "n2bbbbbbbbbbbbbbbb", Service: "web", Slot: 2, Line: []byte("unknown")},
		},
	}
	cfg := serve(t, f)
	tests := []struct {
		name     string
		args     []string
		wantOut  string
		checkReq func(*berthv1.LogsRequest) bool
	}{
		{
			"timestamps", []string{"logs", "shop/web.2", "--timestamps"},
			"2030-01-02T03:04:05.000006000Z known\n-                              unknown\n",
			func(r *berthv1.LogsRequest) bool { return r.Since == nil && !r.Follow },
		},
		{
			"since a duration", []string{"logs", "shop/web.2", "--since", "10m"},
			"known\nunknown\n",
			func(r *berthv1.LogsRequest) bool {
				d := time.Since(r.Since.AsTime())
				return d >= 10*time.Minute && d < 11*time.Minute
			},
		},
		{
			"since a time", []string{"logs", "shop/web.2", "--since", "2030-01-02T03:04:05Z"},
			"known\nunknown\n",
			func(r *berthv1.LogsRequest) bool {
				return r.Since.AsTime().Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
			},
		},
		{
			// Following a service, lines carry their task even while one
			// runs: its replacement may join.
			"follow a service", []string{"logs", "shop/web", "-f", "-t"},
			"web.2@node-2 | 2030-01-02T03:04:05.000006000Z known\nweb.2@node-2 | -                              unknown\n",
			func(r *berthv1.LogsRequest) bool { return r.Follow && r.TaskId == "" && r.Service == "web" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRun(t, cfg, tt.args...)
			if r.stdout != tt.wantOut {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.wantOut)
			}
			f.mu.Lock()
			req := f.logReqs[len(f.logReqs)-1]
			f.mu.Unlock()
			if !tt.checkReq(req) {
				t.Errorf("request = %v", req)
			}
		})
	}
	if r := run(t, cfg, nil, "logs", "shop/web", "--since", "last week"); r.code == 0 || !strings.Contains(r.stderr, "neither a duration") {
		t.Errorf("bad --since: exit %d, stderr %q", r.code, r.stderr)
	}
}
