package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/fake"
	"github.com/berthproject/berth/agent/session"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// execAgent serves the NodeService of an agent on a fake runtime with one
// running container, "t1", over loopback, and returns a client of it.
func execAgent(t *testing.T) (*fake.Runtime, berthv1.NodeServiceClient) {
	t.Helper()
	ctx := context.Background()
	rt := fake.New()
	if err := rt.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	if err := rt.Create(ctx, runtime.ContainerSpec{ID: "t1", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{Name: "node-a"}, creds: &session.Credentials{NodeID: "n1"}, rt: rt}
	gs := grpc.NewServer()
	berthv1.RegisterNodeServiceServer(gs, &nodeService{a: a})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		<-done
	})
	return rt, berthv1.NewNodeServiceClient(conn)
}

// execAll sends reqs on a new Exec call, half-closes it and returns what
// came back, and the call's error.
func execAll(t *testing.T, c berthv1.NodeServiceClient, reqs ...*berthv1.ExecRequest) ([]*berthv1.ExecResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := c.Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			break // the call ended: Recv says why
		}
	}
	stream.CloseSend()
	var out []*berthv1.ExecResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

func TestNodeServiceExecRelays(t *testing.T) {
	rt, c := execAgent(t)
	var (
		mu  sync.Mutex
		got runtime.SessionOptions
		sz  runtime.TerminalSize
	)
	rt.SetExecSession("t1", func(ctx context.Context, opts runtime.SessionOptions) (int, error) {
		in, err := io.ReadAll(opts.Stdin)
		if err != nil {
			return -1, err
		}
		var resized runtime.TerminalSize
		select {
		case resized = <-opts.Resize:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
		mu.Lock()
		got, sz = opts, resized
		mu.Unlock()
		opts.Stdout.Write(append([]byte("out:"), in...))
		opts.Stderr.Write([]byte("err"))
		return 3, nil
	})
	start := &berthv1.ExecStart{TaskId: "t1", Command: []string{"sh"}, Tty: true, Stdin: true,
		Env: []string{"A=1"}, User: "www", WorkingDir: "/srv", Size: &berthv1.TerminalSize{Width: 80, Height: 24}}
	resps, err := execAll(t, c,
		&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Start{Start: start}},
		&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Resize{Resize: &berthv1.TerminalSize{Width: 100, Height: 50}}},
		&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Stdin{Stdin: []byte("ab")}},
		&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Stdin{Stdin: []byte("c")}},
		&berthv1.ExecRequest{Part: &berthv1.ExecRequest_StdinClosed{StdinClosed: true}},
	)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	var stdout, stderr string
	for _, r := range resps {
		stdout += string(r.GetStdout())
		stderr += string(r.GetStderr())
	}
	if len(resps) < 2 || resps[0].GetTaskId() != "t1" {
		t.Fatalf("responses %v: want the task ID first", resps)
	}
	if last := resps[len(resps)-1]; last.GetPart() == nil || last.GetExitCode() != 3 {
		t.Errorf("last response %v, want exit code 3", last)
	}
	if stdout != "out:abc" || stderr != "err" {
		t.Errorf("stdout %q stderr %q, want %q %q", stdout, stderr, "out:abc", "err")
	}
	mu.Lock()
	defer mu.Unlock()
	want := runtime.SessionOptions{Cmd: []string{"sh"}, Env: []string{"A=1"}, User: "www", WorkingDir: "/srv", TTY: true,
		Size: runtime.TerminalSize{Width: 80, Height: 24}}
	if !slices.Equal(got.Cmd, want.Cmd) || !slices.Equal(got.Env, want.Env) || got.User != want.User ||
		got.WorkingDir != want.WorkingDir || got.TTY != want.TTY || got.Size != want.Size {
		t.Errorf("session options %+v, want %+v", got, want)
	}
	if sz != (runtime.TerminalSize{Width: 100, Height: 50}) {
		t.Errorf("resize %+v, want 100x50", sz)
	}
}

func TestNodeServiceExecRefusals(t *testing.T) {
	_, c := execAgent(t)
	tests := []struct {
		name string
		reqs []*berthv1.ExecRequest
		code codes.Code
	}{
		{"no start", []*berthv1.ExecRequest{{Part: &berthv1.ExecRequest_Stdin{Stdin: []byte("x")}}}, codes.InvalidArgument},
		{"no command", []*berthv1.ExecRequest{{Part: &berthv1.ExecRequest_Start{Start: &berthv1.ExecStart{TaskId: "t1"}}}}, codes.InvalidArgument},
		{"unknown task", []*berthv1.ExecRequest{{Part: &berthv1.ExecRequest_Start{Start: &berthv1.ExecStart{TaskId: "nope", Command: []string{"sh"}}}}}, codes.NotFound},
	}
	for _, tc := range tests {
		_, err := execAll(t, c, tc.reqs...)
		if status.Code(err) != tc.code {
			t.Errorf("%s: error %v, want code %v", tc.name, err, tc.code)
		}
	}
}

func TestNodeServiceStats(t *testing.T) {
	rt, c := execAgent(t)
	rt.SetStats("t1", runtime.ContainerStats{CPUUsageNanos: 5e9, MemoryBytes: 1 << 20, MemoryLimitBytes: 1 << 30, Pids: 2, NetworkRxBytes: 300, NetworkTxBytes: 200})
	resp, err := c.Stats(context.Background(), &berthv1.NodeStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Tasks) != 1 {
		t.Fatalf("Stats = %v, want one task", resp.Tasks)
	}
	got := resp.Tasks[0]
	if got.TaskId != "t1" || got.NodeId != "n1" || got.CpuUsageNanos != 5e9 || got.MemoryBytes != 1<<20 ||
		got.MemoryLimitBytes != 1<<30 || got.Pids != 2 || got.At == nil || got.CpuPercent != 0 ||
		got.NetworkRxBytes != 300 || got.NetworkTxBytes != 200 || got.NetworkRxBytesPerSecond != 0 {
		t.Errorf("Stats = %v, want t1's stats with 0%% CPU and no network rate (neither moved)", got)
	}
}

func TestCPUPercent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sample := func(at time.Duration, nanos uint64) runtime.ContainerStats {
		return runtime.ContainerStats{ID: "t", At: t0.Add(at), CPUUsageNanos: nanos}
	}
	tests := []struct {
		name      string
		prev, cur runtime.ContainerStats
		want      float64
	}{
		{"half a core", sample(0, 0), sample(time.Second, 5e8), 50},
		{"two cores", sample(0, 1e9), sample(time.Second, 3e9), 200},
		{"idle", sample(0, 7), sample(time.Second, 7), 0},
		{"counter went back (restarted)", sample(0, 9e9), sample(time.Second, 1e9), 0},
		{"same moment", sample(0, 0), sample(0, 5), 0},
	}
	for _, tc := range tests {
		if got := cpuPercent(tc.prev, tc.cur); got != tc.want {
			t.Errorf("%s: cpuPercent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPerSecond(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur uint64
		dt        time.Duration
		want      float64
	}{
		{"a kilobyte a second", 1000, 3000, 2 * time.Second, 1000},
		{"still", 5, 5, time.Second, 0},
		{"reset", 9000, 10, time.Second, 0},
		{"same moment", 0, 10, 0, 0},
	}
	for _, tc := range tests {
		if got := perSecond(tc.prev, tc.cur, tc.dt); got != tc.want {
			t.Errorf("%s: perSecond = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCPUSamplerKeepsUsableSamples(t *testing.T) {
	var c cpuSampler
	now := time.Now()
	at := func(d time.Duration) runtime.ContainerStats { return runtime.ContainerStats{ID: "t", At: now.Add(d)} }
	if prev := c.swap([]runtime.ContainerStats{at(-10 * time.Second)}); len(prev) != 0 {
		t.Fatalf("first swap returned %v, want nothing", prev)
	}
	if prev := c.swap([]runtime.ContainerStats{at(-10*time.Second + 50*time.Millisecond)}); len(prev) != 0 {
		t.Errorf("a sample 50ms old was used: %v", prev)
	}
	prev := c.swap([]runtime.ContainerStats{at(0)})
	if p, ok := prev["t"]; !ok || !p.At.Equal(now.Add(-10*time.Second+50*time.Millisecond)) {
		t.Errorf("swap returned %v, want the sample from 10s ago", prev)
	}
	c.swap([]runtime.ContainerStats{{ID: "old", At: now.Add(-time.Minute)}})
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.last["old"]; ok {
		t.Errorf("a sample a minute old is still kept")
	}
}
