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

func TestLogsOfAppUntilAndUsageErrors(t *testing.T) {
	f := &fakeCluster{
		nodes: testNodes(),
		tasks: testTasks(time.Now()),
		logs: []*berthv1.LogEntry{
			{TaskId: "task-web-1-0123456789", NodeId: "n1aaaaaaaaaaaaaaaa", Service: "web", Slot: 1, Line: []byte("from web")},
			{TaskId: "task-db-1-0123456789", NodeId: "n2bbbbbbbbbbbbbbbb", Service: "db", Slot: 1, Stream: berthv1.LogStream_LOG_STREAM_STDERR, Line: []byte("from db")},
		},
	}
	cfg := serve(t, f)

	// A whole app: every service, each line with its task.
	r := mustRun(t, cfg, "logs", "shop", "--until", "2030-01-02T03:04:05Z", "--tail", "5")
	if r.stdout != "web.1@node-1 | from web\n" || r.stderr != "db.1@node-2 | from db\n" {
		t.Errorf("logs shop: stdout %q, stderr %q; want web on stdout and db on stderr, prefixed", r.stdout, r.stderr)
	}
	f.mu.Lock()
	req := f.logReqs[len(f.logReqs)-1]
	f.mu.Unlock()
	if req.App != "shop" || req.Service != "" || req.TaskId != "" || req.Tail != 5 ||
		!req.Until.AsTime().Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) || req.Since != nil {
		t.Errorf("logs shop: request = %v, want app shop, tail 5, until 2030-01-02T03:04:05Z", req)
	}
	r = mustRun(t, cfg, "logs", "shop/web", "--until", "1h")
	f.mu.Lock()
	req = f.logReqs[len(f.logReqs)-1]
	f.mu.Unlock()
	if d := time.Since(req.Until.AsTime()); d < time.Hour || d > time.Hour+time.Minute {
		t.Errorf("--until 1h: request until %v, want an hour ago", req.Until.AsTime())
	}

	for _, args := range [][]string{
		{"logs", "shop/web", "--tail", "abc"},
		{"logs", "shop/web", "--tail", "-3"},
		{"logs", "shop/web", "--until", "yesterday"},
		{"logs", "shop/web", "--since", "-5m"},
		{"logs", "shop/web", "--since", "5m", "--until", "10m"},
	} {
		if r := run(t, cfg, nil, args...); r.code != exitUsage || !strings.Contains(r.stderr, args[2]) {
			t.Errorf("berth %s: exit %d, stderr %q; want %d naming %s", strings.Join(args, " "), r.code, r.stderr, exitUsage, args[2])
		}
	}
}
