package apiserver

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestWatchEventsSendsHistoryThenNewEvents(t *testing.T) {
	c := newBuildCluster(t)
	st := c.srv.cfg.Store
	web := &berthv1.Task{Meta: &berthv1.Meta{Id: "t-web"}, Namespace: "default", App: "shop", Service: "web", Slot: 1}
	db := &berthv1.Task{Meta: &berthv1.Meta{Id: "t-db"}, Namespace: "default", App: "shop", Service: "db", Slot: 1}
	st.RecordEvent(store.TaskEvent(web, "fail", "old web", ""))
	st.RecordEvent(store.TaskEvent(db, "fail", "old db", ""))
	if err := st.FlushEvents(t.Context()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stream, err := c.client.WatchEvents(ctx, &berthv1.ListEventsRequest{App: "shop", Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("WatchEvents: %v", err)
		}
		return ev.Message
	}
	if got := next(); got != "old web" {
		t.Fatalf("first event %q, want the history's %q", got, "old web")
	}
	// Recorded after the call began: the db event is filtered out, the
	// web one arrives.
	st.RecordEvent(store.TaskEvent(db, "fail", "new db", ""))
	st.RecordEvent(store.TaskEvent(web, "replace", "new web", ""))
	if got := next(); got != "new web" {
		t.Fatalf("next event %q, want %q", got, "new web")
	}
}

// fakeLogNode is a NodeService whose Logs sends one line per task asked
// ("out of ID"), then, when following, waits for the caller to leave.
type fakeLogNode struct {
	berthv1.UnimplementedNodeServiceServer

	mu    sync.Mutex
	since []string // the since of each call, RFC 3339
}

func (f *fakeLogNode) Logs(req *berthv1.NodeLogsRequest, stream grpc.ServerStreamingServer[berthv1.LogEntry]) error {
	f.mu.Lock()
	if req.Since != nil {
		f.since = append(f.since, req.Since.AsTime().Format(time.RFC3339Nano))
	}
	f.mu.Unlock()
	for _, id := range req.TaskIds {
		if err := stream.Send(&berthv1.LogEntry{TaskId: id, Line: []byte("out of " + id)}); err != nil {
			return err
		}
	}
	if req.Follow {
		<-stream.Context().Done()
	}
	return nil
}

// putTask writes t, as the orchestrator and dispatcher would, and waits
// for the cache to hold it.
func putTask(t *testing.T, s *Server, tk *berthv1.Task) {
	t.Helper()
	var txn store.Txn
	txn.Put(store.TaskKey(tk.Namespace, tk.App, tk.Service, tk.GetMeta().GetId()), tk)
	rev, err := s.cfg.Store.Commit(t.Context(), &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
}

func logTask(id, node string, state berthv1.TaskState) *berthv1.Task {
	return &berthv1.Task{
		Meta: &berthv1.Meta{Id: id}, Namespace: "default", App: "shop", Service: "web", Slot: 1, NodeId: node,
		Status: &berthv1.TaskStatus{State: state},
	}
}

func TestLogsFollowsAReplacement(t *testing.T) {
	c := newBuildCluster(t)
	node := &fakeLogNode{}
	c.addNodeService("n1", "n1", node)
	apply(t, c.srv, "shop", svc("web", "web:1", 1))
	putTask(t, c.srv, logTask("t1", "n1", berthv1.TaskState_TASK_STATE_RUNNING))

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	since := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	stream, err := c.client.Logs(ctx, &berthv1.LogsRequest{App: "shop", Service: "web", Follow: true, Tail: -1, Since: timestamppb.New(since)})
	if err != nil {
		t.Fatal(err)
	}
	next := func() *berthv1.LogEntry {
		t.Helper()
		e, err := stream.Recv()
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		return e
	}
	if e := next(); string(e.Line) != "out of t1" || e.Service != "web" || e.Slot != 1 || e.NodeId != "n1" {
		t.Fatalf("first entry %v, want t1's line with its service, slot and node", e)
	}
	// t1 fails; its replacement is starting, then runs: its output joins.
	putTask(t, c.srv, logTask("t1", "n1", berthv1.TaskState_TASK_STATE_FAILED))
	putTask(t, c.srv, logTask("t2", "n1", berthv1.TaskState_TASK_STATE_STARTING))
	putTask(t, c.srv, logTask("t2", "n1", berthv1.TaskState_TASK_STATE_RUNNING))
	if e := next(); string(e.Line) != "out of t2" {
		t.Fatalf("after the replacement got %q, want the new task's line", e.Line)
	}
	cancel()
	node.mu.Lock()
	defer node.mu.Unlock()
	want := since.Format(time.RFC3339Nano)
	if len(node.since) != 2 || node.since[0] != want || node.since[1] != want {
		t.Errorf("node saw since %q, want %q on both calls", node.since, want)
	}
}

func TestLogsWithoutFollowEnds(t *testing.T) {
	c := newBuildCluster(t)
	c.addNodeService("n1", "n1", &fakeLogNode{})
	apply(t, c.srv, "shop", svc("web", "web:1", 1))
	putTask(t, c.srv, logTask("t1", "n1", berthv1.TaskState_TASK_STATE_RUNNING))
	stream, err := c.client.Logs(t.Context(), &berthv1.LogsRequest{App: "shop", Service: "web", Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Logs: %v", err)
		}
		lines = append(lines, string(e.Line))
	}
	if len(lines) != 1 || lines[0] != "out of t1" {
		t.Fatalf("Logs = %q, want t1's one line", lines)
	}
}
