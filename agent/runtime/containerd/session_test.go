package containerd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/agent/runtime"
)

// syncBuffer is a bytes buffer that output copies may write while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestContainerdExecSession(t *testing.T) {
	env := newTestEnv(t, nil)
	startSleeper(t, env.rt, "sess", []string{"FROM_SPEC=spec", "OVER=spec"})

	tests := []struct {
		name               string
		opts               runtime.SessionOptions
		wantCode           int
		wantOut, wantErr   string
		wantOutContains    string
		wantOutNotContains string
	}{
		{name: "exit code and streams",
			opts:     runtime.SessionOptions{Cmd: []string{"sh", "-c", "echo hi; echo oops >&2; exit 3"}},
			wantCode: 3, wantOut: "hi\n", wantErr: "oops\n"},
		{name: "stdin to end of input",
			opts:    runtime.SessionOptions{Cmd: []string{"cat"}, Stdin: strings.NewReader("line one\nline two\n")},
			wantOut: "line one\nline two\n"},
		{name: "env, user and working dir",
			opts: runtime.SessionOptions{Cmd: []string{"sh", "-c", `echo "$FROM_SPEC $OVER $(id -u):$(id -g) $(pwd)"`},
				Env: []string{"OVER=exec"}, User: "1000:1001", WorkingDir: "/bin"},
			wantOut: "spec exec 1000:1001 /bin\n"},
		{name: "terminal",
			opts:            runtime.SessionOptions{Cmd: []string{"tty"}, TTY: true},
			wantOutContains: "/dev/pts/"},
		{name: "terminal size",
			opts:            runtime.SessionOptions{Cmd: []string{"stty", "size"}, TTY: true, Size: runtime.TerminalSize{Width: 101, Height: 33}},
			wantOutContains: "33 101"},
		{name: "no terminal",
			opts:     runtime.SessionOptions{Cmd: []string{"tty"}},
			wantCode: 1, wantOut: "not a tty\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr syncBuffer
			tc.opts.Stdout, tc.opts.Stderr = &stdout, &stderr
			code, err := env.rt.ExecSession(ctx, "sess", tc.opts)
			if err != nil {
				t.Fatalf("ExecSession(%q): %v", tc.opts.Cmd, err)
			}
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if tc.wantOutContains != "" {
				if !strings.Contains(stdout.String(), tc.wantOutContains) {
					t.Errorf("stdout %q, want it to contain %q", stdout.String(), tc.wantOutContains)
				}
				return
			}
			if stdout.String() != tc.wantOut || stderr.String() != tc.wantErr {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tc.wantOut, tc.wantErr)
			}
		})
	}

	t.Run("resize", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stdinR, stdinW := io.Pipe()
		defer stdinW.Close()
		resize := make(chan runtime.TerminalSize)
		var stdout syncBuffer
		done := make(chan error, 1)
		var code int
		go func() {
			var err error
			code, err = env.rt.ExecSession(ctx, "sess", runtime.SessionOptions{
				Cmd: []string{"sh", "-c", "while read line; do stty size; done"}, TTY: true,
				Size: runtime.TerminalSize{Width: 80, Height: 24}, Resize: resize, Stdin: stdinR, Stdout: &stdout,
			})
			done <- err
		}()
		resize <- runtime.TerminalSize{Width: 120, Height: 40}
		// The resize goes to the shim on its own; ask for the size until
		// the new one shows.
		eventually(t, 20*time.Second, "stty size reports the new size", func() (bool, string) {
			if _, err := stdinW.Write([]byte("\n")); err != nil {
				return false, err.Error()
			}
			out := stdout.String()
			return strings.Contains(out, "40 120"), out
		})
		stdinW.Close() // end of input ends the loop, and the shell
		if err := <-done; err != nil {
			t.Fatalf("ExecSession: %v", err)
		}
		_ = code // the shell's status after its terminal closes is not specified
	})
}

func TestContainerdStats(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	const limit = 64 << 20
	if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: "busy", Image: busyboxRef, MemoryBytes: limit,
		Command: []string{"sh", "-c", "while :; do :; done"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.rt.Start(ctx, "busy"); err != nil {
		t.Fatal(err)
	}
	startSleeper(t, env.rt, "idle", nil)
	if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: "created", Image: busyboxRef}); err != nil {
		t.Fatal(err)
	}

	var busy runtime.ContainerStats
	eventually(t, 20*time.Second, "the busy container uses CPU", func() (bool, string) {
		got, err := env.rt.Stats(ctx, []string{"busy", "created", "missing"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != "busy" {
			t.Fatalf("Stats(busy, created, missing) = %+v, want only busy", got)
		}
		busy = got[0]
		return busy.CPUUsageNanos > 0, ""
	})
	if busy.MemoryBytes == 0 || busy.MemoryLimitBytes != limit || busy.Pids == 0 || busy.At.IsZero() {
		t.Errorf("busy stats %+v: want memory > 0, limit %d, pids > 0, a time", busy, limit)
	}

	all, err := env.rt.Stats(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]runtime.ContainerStats{}
	for _, s := range all {
		byID[s.ID] = s
	}
	if len(all) != 2 || byID["idle"].ID == "" || byID["busy"].ID == "" {
		t.Fatalf("Stats() = %+v, want busy and idle", all)
	}
	if byID["idle"].MemoryLimitBytes != 0 {
		t.Errorf("idle container without a limit reports limit %d, want 0", byID["idle"].MemoryLimitBytes)
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/sh\n# comment\nwww:x:33:34:www:/var/www:/bin/false\n",
		"group":  "root:x:0:\nstaff:x:50:\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		spec    string
		want    specs.User
		wantErr string
	}{
		{spec: "www", want: specs.User{UID: 33, GID: 34}},
		{spec: "33", want: specs.User{UID: 33, GID: 34}},
		{spec: "1234", want: specs.User{UID: 1234}},
		{spec: "www:staff", want: specs.User{UID: 33, GID: 50}},
		{spec: "www:7", want: specs.User{UID: 33, GID: 7}},
		{spec: "nobody", wantErr: `user "nobody" is not in the container's /etc/passwd`},
		{spec: "www:wheel", wantErr: `group "wheel" is not in the container's /etc/group`},
	}
	for _, tc := range tests {
		got, err := resolveUser(root, tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("resolveUser(%q) error %v, want %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got.UID != tc.want.UID || got.GID != tc.want.GID {
			t.Errorf("resolveUser(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}
