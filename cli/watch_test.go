package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// syncBuffer is a buffer a command writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
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

// runUntil runs berth until its output satisfies done (or a deadline
// passes), then stops it as Ctrl-C does and returns what it printed and
// its exit code.
func runUntil(t *testing.T, cfgPath string, done func(out string) bool, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	root := NewRoot()
	var stdout, stderr syncBuffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{"--config", cfgPath}, args...))
	codes := make(chan int, 1)
	go func() { codes <- Execute(ctx, root) }()
	deadline := time.Now().Add(10 * time.Second)
	for !done(stdout.String()) {
		select {
		case code := <-codes:
			t.Fatalf("berth %s ended (exit %d) before its output was complete:\n%s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			<-codes
			t.Fatalf("berth %s: output incomplete after 10s:\n%s", strings.Join(args, " "), stdout.String())
		}
	}
	cancel()
	code := <-codes
	if stderr.String() != "" {
		t.Errorf("stderr: %s", stderr.String())
	}
	return stdout.String(), code
}

func TestGetServicesWatch(t *testing.T) {
	v1, v2 := svcAt("web", 1, 1, 10), svcAt("web", 2, 1, 11)
	f := newOpsCluster(true, clusterState{services: []*berthv1.Service{v1}}, clusterState{services: []*berthv1.Service{v2}})
	cfg := serve(t, f)
	out, code := runUntil(t, cfg, func(out string) bool { return strings.Contains(out, "shop/web:2") }, "get", "services", "-w")
	if code != 0 {
		t.Errorf("exit %d after Ctrl-C, want 0", code)
	}
	drawings := strings.Split(out, watchSeparator)
	if len(drawings) != 2 {
		t.Fatalf("got %d drawings, want 2 (the first list, then the changed one, unchanged reads not repeated):\n%s", len(drawings), out)
	}
	if !strings.Contains(drawings[0], "shop/web:1") || !strings.Contains(drawings[1], "shop/web:2") {
		t.Errorf("drawings do not follow the change:\n%s", out)
	}
	for _, d := range drawings {
		if !strings.HasPrefix(d, "NAME") {
			t.Errorf("drawing does not start with the header:\n%s", d)
		}
	}
}
