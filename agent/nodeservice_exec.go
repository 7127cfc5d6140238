package agent

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Exec runs a command in a task's container (the container ID is the
// task ID): the first message starts it, then stdin and terminal resizes
// come in while output goes out; the task ID is sent first and the exit
// code last.
func (s *nodeService) Exec(stream berthv1.NodeService_ExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	switch {
	case start == nil:
		return status.Error(codes.InvalidArgument, "exec must start with an ExecStart message")
	case start.TaskId == "":
		return status.Error(codes.InvalidArgument, "exec: ExecStart names no task")
	case len(start.Command) == 0:
		return status.Error(codes.InvalidArgument, "exec: no command to run")
	}
	ctx := stream.Context()
	out := &execOutput{stream: stream}
	if err := out.send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_TaskId{TaskId: start.TaskId}}); err != nil {
		return err
	}

	opts := runtime.SessionOptions{
		Cmd: start.Command, Env: start.Env, User: start.User, WorkingDir: start.WorkingDir, TTY: start.Tty,
		Stdout: out.writer(true), Stderr: out.writer(false),
	}
	if sz := start.GetSize(); sz != nil {
		opts.Size = runtime.TerminalSize{Width: sz.Width, Height: sz.Height}
	}
	resize := make(chan runtime.TerminalSize, 1)
	opts.Resize = resize
	var stdin *io.PipeWriter
	if start.Stdin {
		pr, pw := io.Pipe()
		defer pr.Close() // unblocks the receiver when the command stops reading
		opts.Stdin, stdin = pr, pw
	}
	// The receiver ends when the call does (Recv then fails), so it needs
	// no other stop.
	go receiveExecInput(stream, stdin, resize)

	code, err := s.a.rt.ExecSession(ctx, start.TaskId, opts)
	if err != nil {
		out.close()
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			return status.Errorf(codes.NotFound, "task %s has no running container on node %s", start.TaskId, s.a.cfg.Name)
		case ctx.Err() != nil:
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Errorf(codes.FailedPrecondition, "exec %q in task %s: %v", start.Command[0], start.TaskId, err)
	}
	err = out.send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_ExitCode{ExitCode: int32(code)}})
	out.close()
	return err
}

// receiveExecInput passes stdin to w (nil: the command takes no input, so
// it is dropped) and sizes to resize, keeping only the newest size when
// the runtime is behind.
func receiveExecInput(stream berthv1.NodeService_ExecServer, w *io.PipeWriter, resize chan runtime.TerminalSize) {
	for {
		msg, err := stream.Recv()
		if err != nil {
			if w != nil {
				if errors.Is(err, io.EOF) {
					w.Close() // the client half-closed: no more input
				} else {
					w.CloseWithError(err)
				}
			}
			return
		}
		switch {
		case msg.GetResize() != nil:
			sz := runtime.TerminalSize{Width: msg.GetResize().Width, Height: msg.GetResize().Height}
			select {
			case resize <- sz:
			default:
				select {
				case <-resize:
				default:
				}
				resize <- sz // the only sender: there is room now
			}
		case msg.GetStdinClosed():
			if w != nil {
				w.Close()
			}
		case msg.GetStdin() != nil && w != nil:
			// An error means the command stopped reading: drop the input.
			_, _ = w.Write(msg.GetStdin())
		}
	}
}

// execOutput sends an exec's output and result on its stream, one message
// at a time, and nothing once closed: the runtime's copies may still write
// after the command's end was reported.
type execOutput struct {
	stream berthv1.NodeService_ExecServer
	mu     sync.Mutex
	closed bool
}

func (o *execOutput) send(m *berthv1.ExecResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return io.ErrClosedPipe
	}
	return o.stream.Send(m)
}

func (o *execOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
}

// writer returns an io.Writer for stdout (or stderr).
func (o *execOutput) writer(stdout bool) io.Writer {
	return execWriterFunc(func(p []byte) (int, error) {
		m := &berthv1.ExecResponse{Part: &berthv1.ExecResponse_Stderr{Stderr: p}}
		if stdout {
			m.Part = &berthv1.ExecResponse_Stdout{Stdout: p}
		}
		// Send marshals p before it returns, so the caller may reuse it.
		if err := o.send(m); err != nil {
			return 0, err
		}
		return len(p), nil
	})
}

type execWriterFunc func([]byte) (int, error)

func (f execWriterFunc) Write(p []byte) (int, error) { return f(p) }

// CPU sampling for Stats. CPU use is a rate, so it needs two samples: a
// task's previous sample is kept between calls, and a call that has none
// recent enough takes its own pair, statsSampleGap apart, so that the
// first `berth top` already shows real values.
const (
	// statsSampleGap is how far apart the two samples of one call are.
	statsSampleGap = 200 * time.Millisecond
	// statsSampleMinAge and statsSampleMaxAge bound the age of a kept
	// sample that a call may use: a younger one measures too short a time,
	// an older one an average over too long a time.
	statsSampleMinAge = 100 * time.Millisecond
	statsSampleMaxAge = 30 * time.Second
)

// cpuSampler keeps the last CPU sample of each task. Its zero value is
// ready to use.
type cpuSampler struct {
	mu   sync.Mutex
	last map[string]runtime.ContainerStats
}

// swap records samples and returns, for each of them, the previous sample
// of the same task when it is usable. It forgets samples too old to use.
func (c *cpuSampler) swap(samples []runtime.ContainerStats) map[string]runtime.ContainerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]runtime.ContainerStats{}
	}
	prev := map[string]runtime.ContainerStats{}
	for _, s := range samples {
		if p, ok := c.last[s.ID]; ok {
			if age := s.At.Sub(p.At); age >= statsSampleMinAge && age <= statsSampleMaxAge {
				prev[s.ID] = p
			}
		}
		c.last[s.ID] = s
	}
	now := time.Now()
	for id, s := range c.last {
		if now.Sub(s.At) > statsSampleMaxAge {
			delete(c.last, id)
		}
	}
	return prev
}

// cpuPercent is the share of one core that a task used between two
// samples (over 100 when it used several cores).
func cpuPercent(prev, cur runtime.ContainerStats) float64 {
	dt := cur.At.Sub(prev.At)
	if dt <= 0 || cur.CPUUsageNanos < prev.CPUUsageNanos {
		return 0
	}
	return float64(cur.CPUUsageNanos-prev.CPUUsageNanos) / float64(dt.Nanoseconds()) * 100
}

// perSecond is the rate at which a counter grew from prev to cur over dt;
// 0 when it went back (the counters were reset with the interfaces).
func perSecond(prev, cur uint64, dt time.Duration) float64 {
	if dt <= 0 || cur < prev {
		return 0
	}
	return float64(cur-prev) / dt.Seconds()
}

// Stats reports the resource use of the node's running tasks (those asked
// for, or all).
func (s *nodeService) Stats(ctx context.Context, req *berthv1.NodeStatsRequest) (*berthv1.NodeStatsResponse, error) {
	samples, err := s.a.rt.Stats(ctx, req.TaskIds)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading resource use on node %s: %v", s.a.cfg.Name, err)
	}
	prev := s.a.cpuSamples.swap(samples)
	var again []string
	for _, smp := range samples {
		if _, ok := prev[smp.ID]; !ok {
			again = append(again, smp.ID)
		}
	}
	if len(again) > 0 {
		timer := time.NewTimer(statsSampleGap)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		second, err := s.a.rt.Stats(ctx, again)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "reading resource use on node %s: %v", s.a.cfg.Name, err)
		}
		s.a.cpuSamples.swap(second)
		byID := make(map[string]runtime.ContainerStats, len(samples))
		for _, smp := range samples {
			byID[smp.ID] = smp
		}
		for _, smp := range second {
			prev[smp.ID] = byID[smp.ID] // this call's first sample
			byID[smp.ID] = smp
		}
		samples = slices.SortedFunc(maps.Values(byID), func(a, b runtime.ContainerStats) int { return strings.Compare(a.ID, b.ID) })
	}
	resp := &berthv1.NodeStatsResponse{}
	for _, smp := range samples {
		st := &berthv1.TaskStats{
			TaskId: smp.ID, NodeId: s.a.nodeID(), CpuUsageNanos: smp.CPUUsageNanos,
			MemoryBytes: smp.MemoryBytes, MemoryLimitBytes: smp.MemoryLimitBytes, Pids: smp.Pids,
			NetworkRxBytes: smp.NetworkRxBytes, NetworkTxBytes: smp.NetworkTxBytes,
			At: timestamppb.New(smp.At),
		}
		if p, ok := prev[smp.ID]; ok {
			st.CpuPercent = cpuPercent(p, smp)
			st.NetworkRxBytesPerSecond = perSecond(p.NetworkRxBytes, smp.NetworkRxBytes, smp.At.Sub(p.At))
			st.NetworkTxBytesPerSecond = perSecond(p.NetworkTxBytes, smp.NetworkTxBytes, smp.At.Sub(p.At))
		}
		resp.Tasks = append(resp.Tasks, st)
	}
	return resp, nil
}

// nodeID is the node's ID, empty before the agent joined.
func (a *Agent) nodeID() string {
	if a.creds == nil {
		return ""
	}
	return a.creds.NodeID
}
