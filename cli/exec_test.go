package cli

import (
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// execCluster is a fakeCluster whose Exec echoes stdin (when asked for)
// to stdout, then writes output and exits with exitCode.
type execCluster struct {
	*fakeCluster
	output   string
	exitCode int32

	mu     sync.Mutex
	starts []*berthv1.ExecStart
}

func (f *execCluster) Exec(stream grpc.BidiStreamingServer[berthv1.ExecRequest, berthv1.ExecResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	f.mu.Lock()
	f.starts = append(f.starts, start)
	f.mu.Unlock()
	if err := stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_TaskId{TaskId: "t-1"}}); err != nil {
		return err
	}
	for start.Stdin {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) || msg.GetStdinClosed() {
			break
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_Stdout{Stdout: msg.GetStdin()}}); err != nil {
			return err
		}
	}
	if f.output != "" {
		if err := stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_Stderr{Stderr: []byte(f.output)}}); err != nil {
			return err
		}
	}
	return stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_ExitCode{ExitCode: f.exitCode}})
}

func TestExecCommand(t *testing.T) {
	tasks := []*berthv1.Task{
		{Meta: &berthv1.Meta{Id: "abc123"}, App: "shop", Service: "web", Slot: 1, DesiredState: berthv1.TaskState_TASK_STATE_RUNNING},
		{Meta: &berthv1.Meta{Id: "def456"}, App: "shop", Service: "web", Slot: 2, DesiredState: berthv1.TaskState_TASK_STATE_RUNNING},
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		exitCode   int32
		output     string
		wantCode   int
		wantStdout string
		wantStderr string
		want       *berthv1.ExecStart // nil: no call
	}{
		{name: "service, exit code",
			args: []string{"exec", "shop/web", "--", "sh", "-c", "exit 3"}, exitCode: 3, output: "oops\n",
			wantCode: 3, wantStderr: "oops\n",
			want: &berthv1.ExecStart{Namespace: "default", App: "shop", Service: "web", Command: []string{"sh", "-c", "exit 3"}}},
		{name: "task prefix, stdin, options, flags after the task belong to the command",
			args:  []string{"exec", "-i", "-e", "A=1", "-u", "www", "-w", "/srv", "abc", "cat", "-n"},
			stdin: "some input", wantStdout: "some input",
			want: &berthv1.ExecStart{Namespace: "default", TaskId: "abc123", Command: []string{"cat", "-n"}, Stdin: true,
				Env: []string{"A=1"}, User: "www", WorkingDir: "/srv"}},
		{name: "slot",
			args: []string{"exec", "-t", "shop/web.2", "--", "tty"},
			want: &berthv1.ExecStart{Namespace: "default", TaskId: "def456", Command: []string{"tty"}, Tty: true}},
		{name: "no command", args: []string{"exec", "shop/web", "--"}, wantCode: exitUsage},
		{name: "bad env", args: []string{"exec", "-e", "NOEQUALS", "shop/web", "--", "env"}, wantCode: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &execCluster{fakeCluster: &fakeCluster{tasks: tasks}, exitCode: tc.exitCode, output: tc.output}
			r := run(t, serve(t, f), strings.NewReader(tc.stdin), tc.args...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, tc.wantCode, r.stderr)
			}
			if tc.want == nil {
				if len(f.starts) != 0 {
					t.Errorf("the server got %v, want no call", f.starts)
				}
				return
			}
			if r.stdout != tc.wantStdout || r.stderr != tc.wantStderr {
				t.Errorf("stdout %q stderr %q, want %q %q", r.stdout, r.stderr, tc.wantStdout, tc.wantStderr)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.starts) != 1 {
				t.Fatalf("the server got %d starts, want 1", len(f.starts))
			}
			got, want := f.starts[0], tc.want
			if got.Namespace != want.Namespace || got.TaskId != want.TaskId || got.App != want.App || got.Service != want.Service ||
				!slices.Equal(got.Command, want.Command) || got.Stdin != want.Stdin || got.Tty != want.Tty ||
				!slices.Equal(got.Env, want.Env) || got.User != want.User || got.WorkingDir != want.WorkingDir {
				t.Errorf("start %v, want %v", got, want)
			}
		})
	}
}
