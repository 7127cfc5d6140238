package cli

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// openPTY opens a pseudo-terminal pair: what is written to tty is read
// from pty.
func openPTY(t *testing.T) (pty, tty *os.File) {
	t.Helper()
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { pty.Close() })
	if err := unix.IoctlSetPointerInt(int(pty.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(pty.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open tty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return pty, tty
}

// On a terminal, berth stats redraws in place until Ctrl-C (its context
// ending), which ends it with success.
func TestStatsRedrawsOnATerminalUntilInterrupted(t *testing.T) {
	f := &topCluster{
		fakeCluster: &fakeCluster{tasks: []*berthv1.Task{{Meta: &berthv1.Meta{Id: "0123456789abcdef"}, App: "shop", Service: "web", Slot: 1}}},
		resp:        &berthv1.TopResponse{Tasks: []*berthv1.TaskStats{{TaskId: "0123456789abcdef", MemoryBytes: 1 << 20}}},
	}
	cfg := serve(t, f)
	pty, tty := openPTY(t)

	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	root := NewRoot()
	root.SetOut(tty)
	var stderr bytes.Buffer
	root.SetErr(&stderr)
	root.SetArgs([]string{"--config", cfg, "stats"})
	code := make(chan int, 1)
	go func() { code <- Execute(ctx, root) }()

	// Two drawings, each starting with a cleared screen.
	var out []byte
	buf := make([]byte, 4096)
	for bytes.Count(out, []byte(clearScreen)) < 2 {
		pty.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := pty.Read(buf)
		if err != nil {
			t.Fatalf("reading the terminal: %v; read so far %q", err, out)
		}
		out = append(out, buf[:n]...)
	}
	if !bytes.Contains(out, []byte("shop/web.1")) {
		t.Errorf("the drawings lack the task: %q", out)
	}
	interrupt()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("berth stats ended with %d after Ctrl-C, want 0; stderr %q", c, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("berth stats did not end after Ctrl-C")
	}
}
