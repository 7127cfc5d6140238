package apiserver

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeExecNode is a NodeService whose Exec echoes stdin to stdout and
// exits with exitCode, and whose Stats reports memory per task.
type fakeExecNode struct {
	berthv1.UnimplementedNodeServiceServer
	exitCode int32

	mu       sync.Mutex
	starts   []*berthv1.ExecStart
	statsFor [][]string
}

func (f *fakeExecNode) Exec(stream grpc.BidiStreamingServer[berthv1.ExecRequest, berthv1.ExecResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	f.mu.Lock()
	f.starts = append(f.starts, start)
	f.mu.Unlock()
	if err := stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_TaskId{TaskId: start.TaskId}}); err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) || msg.GetStdinClosed() {
			break
		}
		if err != nil {
			return err
		}
		if msg.GetStdin() != nil {
			if err := stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_Stdout{Stdout: msg.GetStdin()}}); err != nil {
				return err
			}
		}
	}
	return stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_ExitCode{ExitCode: f.exitCode}})
}

func (f *fakeExecNode) Stats(_ context.Context, req *berthv1.NodeStatsRequest) (*berthv1.NodeStatsResponse, error) {
	f.mu.Lock()
	f.statsFor = append(f.statsFor, slices.Sorted(slices.Values(req.TaskIds)))
	f.mu.Unlock()
	resp := &berthv1.NodeStatsResponse{}
	for _, id := range req.TaskIds {
		resp.Tasks = append(resp.Tasks, &berthv1.TaskStats{TaskId: id, MemoryBytes: 1000, CpuPercent: 12.5})
	}
	return resp, nil
}

// putTasks stores tasks of app "shop" in the default namespace.
func putTasks(t *testing.T, s *Server, tasks ...*berthv1.Task) {
	t.Helper()
	ctx := context.Background()
	var txn store.Txn
	for _, tk := range tasks {
		tk.Namespace, tk.App = DefaultNamespace, "shop"
		txn.Create(store.TaskKey(tk.Namespace, tk.App, tk.Service, tk.GetMeta().GetId()), tk)
	}
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
}

func execTestTask(id, service string, slot uint64, node string, state berthv1.TaskState) *berthv1.Task {
	return &berthv1.Task{
		Meta: &berthv1.Meta{Id: id}, Service: service, Slot: slot, NodeId: node,
		DesiredState: berthv1.TaskState_TASK_STATE_RUNNING, Status: &berthv1.TaskStatus{State: state},
	}
}

func TestExecProxiesToTheTasksNode(t *testing.T) {
	c := newBuildCluster(t)
	n1, n2 := &fakeExecNode{exitCode: 7}, &fakeExecNode{exitCode: 9}
	c.addNodeService("n1", "node-1", n1)
	c.addNodeService("n2", "node-2", n2)
	run := berthv1.TaskState_TASK_STATE_RUNNING
	putTasks(t, c.srv,
		execTestTask("web-2-abc", "web", 2, "n1", run),
		execTestTask("web-1-def", "web", 1, "n2", run),
		execTestTask("web-0-old", "web", 0, "n1", berthv1.TaskState_TASK_STATE_FAILED),
		execTestTask("db-1-xyz", "db", 1, "n1", berthv1.TaskState_TASK_STATE_PREPARING),
	)

	tests := []struct {
		name     string
		start    *berthv1.ExecStart
		wantTask string
		wantCode int32
		wantErr  codes.Code
	}{
		{"service: lowest running slot", &berthv1.ExecStart{App: "shop", Service: "web"}, "web-1-def", 9, codes.OK},
		{"task ID prefix", &berthv1.ExecStart{TaskId: "web-2"}, "web-2-abc", 7, codes.OK},
		{"ambiguous prefix", &berthv1.ExecStart{TaskId: "web-"}, "", 0, codes.InvalidArgument},
		{"task not running", &berthv1.ExecStart{TaskId: "db-1"}, "", 0, codes.FailedPrecondition},
		{"unknown task", &berthv1.ExecStart{TaskId: "nope"}, "", 0, codes.NotFound},
		{"service without running tasks", &berthv1.ExecStart{App: "shop", Service: "db"}, "", 0, codes.NotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			stream, err := c.client.Exec(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tc.start.Command = []string{"cat"}
			tc.start.Stdin = true
			for _, m := range []*berthv1.ExecRequest{
				{Part: &berthv1.ExecRequest_Start{Start: tc.start}},
				{Part: &berthv1.ExecRequest_Stdin{Stdin: []byte("hello ")}},
				{Part: &berthv1.ExecRequest_Stdin{Stdin: []byte("there")}},
			} {
				if err := stream.Send(m); err != nil {
					break
				}
			}
			stream.CloseSend()
			var got []*berthv1.ExecResponse
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					if status.Code(err) != tc.wantErr {
						t.Fatalf("Exec error %v, want code %v", err, tc.wantErr)
					}
					return
				}
				got = append(got, m)
			}
			if tc.wantErr != codes.OK {
				t.Fatalf("Exec succeeded with %v, want code %v", got, tc.wantErr)
			}
			var out string
			for _, m := range got {
				out += string(m.GetStdout())
			}
			if len(got) < 2 || got[0].GetTaskId() != tc.wantTask || got[len(got)-1].GetExitCode() != tc.wantCode || out != "hello there" {
				t.Errorf("responses %v: want task %s first, output %q, exit %d", got, tc.wantTask, "hello there", tc.wantCode)
			}
		})
	}
}

func TestTopMergesNodesAndListsUnreachable(t *testing.T) {
	c := newBuildCluster(t)
	n1, n2 := &fakeExecNode{}, &fakeExecNode{}
	c.addNodeService("n1", "node-1", n1)
	c.addNodeService("n2", "node-2", n2)
	// A node whose agent is gone: its port refuses connections.
	addNode(t, c.srv, &berthv1.Node{Meta: &berthv1.Meta{Id: "n3"}, Name: "node-3", Address: "127.0.0.1:1",
		Status: berthv1.NodeStatus_NODE_STATUS_READY})
	run := berthv1.TaskState_TASK_STATE_RUNNING
	putTasks(t, c.srv,
		execTestTask("web-2", "web", 2, "n1", run),
		execTestTask("web-1", "web", 1, "n2", run),
		execTestTask("db-1", "db", 1, "n1", run),
		execTestTask("db-2", "db", 2, "n3", run),
		execTestTask("web-3", "web", 3, "n1", berthv1.TaskState_TASK_STATE_PENDING),
	)
	tests := []struct {
		name            string
		req             *berthv1.TopRequest
		want            []string
		wantUnreachable []string
	}{
		{"app", &berthv1.TopRequest{App: "shop"}, []string{"db-1", "web-1", "web-2"}, []string{"node-3"}},
		{"service", &berthv1.TopRequest{App: "shop", Service: "web"}, []string{"web-1", "web-2"}, nil},
		{"node by name", &berthv1.TopRequest{NodeId: "node-1"}, []string{"db-1", "web-2"}, nil},
		{"other app", &berthv1.TopRequest{App: "blog"}, nil, nil},
	}
	for _, tc := range tests {
		resp, err := c.client.Top(context.Background(), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, st := range resp.Tasks {
			got = append(got, st.TaskId)
			if st.MemoryBytes != 1000 || st.NodeId == "" {
				t.Errorf("%s: stats %v, want the node's numbers and its ID", tc.name, st)
			}
		}
		if !slices.Equal(got, tc.want) || !slices.Equal(resp.Unreachable, tc.wantUnreachable) {
			t.Errorf("%s: tasks %v unreachable %v, want %v %v", tc.name, got, resp.Unreachable, tc.want, tc.wantUnreachable)
		}
	}
	if _, err := c.client.Top(context.Background(), &berthv1.TopRequest{NodeId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("Top of an unknown node: %v, want NotFound", err)
	}
}
