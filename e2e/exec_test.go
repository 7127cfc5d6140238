package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const execCompose = `
services:
  box:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
`

// TestExecAndTop: berth exec runs a command in a service's container and
// exits with its code, gives it a real terminal with -it (sizes included),
// and berth top shows the task's memory.
func TestExecAndTop(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", execCompose), "-p", "execapp")
	c.waitRunning("execapp/box", 1, 60*time.Second)

	t.Run("exit code and output", func(t *testing.T) {
		out, errOut, err := c.berth("exec", "execapp/box", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3")
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
			t.Fatalf("berth exec: %v, want exit code 3; stderr:\n%s", err, errOut)
		}
		if out != "hi\n" || errOut != "oops\n" {
			t.Errorf("stdout %q stderr %q, want %q %q", out, errOut, "hi\n", "oops\n")
		}
	})

	t.Run("terminal", func(t *testing.T) {
		term := openPTY(t, 40, 132)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, berthBin, "--config", c.configPath, "exec", "-it", "execapp/box", "--", "sh")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = term.tty, term.tty, term.tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		term.tty.Close() // berth holds it now; the master reads EOF when berth exits
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cancel()
			<-exited
		})

		waitScreen := func(what, want string) {
			t.Helper()
			eventually(t, 30*time.Second, func() (bool, string) {
				s := term.screen.String()
				return strings.Contains(s, want), fmt.Sprintf("%s: screen %q lacks %q", what, s, want)
			})
		}
		waitScreen("the shell's prompt", "# ")
		term.typ(t, "stty size\n")
		waitScreen("the size berth started with", "40 132")

		// A window change reaches the command through SIGWINCH; ask until
		// the new size shows.
		if err := unix.IoctlSetWinsize(term.master, unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 150}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() (bool, string) {
			term.typ(t, "stty size\n")
			s := term.screen.String()
			return strings.Contains(s, "50 150"), fmt.Sprintf("screen %q lacks the new size", s)
		})

		term.typ(t, "tty; exit 4\n")
		select {
		case err := <-exited:
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 4 {
				t.Errorf("berth exec -it: %v, want exit code 4; screen:\n%s", err, term.screen.String())
			}
		case <-ctx.Done():
			t.Fatalf("berth exec -it did not end; screen:\n%s", term.screen.String())
		}
		exited <- nil // for the cleanup
		if s := term.screen.String(); !strings.Contains(s, "/dev/pts/") {
			t.Errorf("screen %q does not name the container's terminal", s)
		}
	})

	t.Run("top", func(t *testing.T) {
		var rows []struct {
			Service     string  `json:"service"`
			Node        string  `json:"node"`
			CPUPercent  float64 `json:"cpuPercent"`
			MemoryBytes uint64  `json:"memoryBytes"`
			Pids        uint32  `json:"pids"`
		}
		out := c.mustBerth("top", "execapp", "-o", "json")
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("berth top -o json: %v\n%s", err, out)
		}
		if len(rows) != 1 || rows[0].Service != "box" || rows[0].Node != "alpha" || rows[0].MemoryBytes == 0 || rows[0].Pids == 0 {
			t.Errorf("berth top rows %+v, want the box task on alpha with memory and pids", rows)
		}
		table := c.mustBerth("top", "execapp")
		if !strings.Contains(table, "execapp/box.1") || !strings.Contains(table, "MEM LIMIT") {
			t.Errorf("berth top table lacks the task:\n%s", table)
		}
	})
}

// pty is a pseudo-terminal made for a test: berth runs on tty, the test
// reads what it shows from master into screen and types into master.
type pty struct {
	master int
	tty    *os.File
	screen *syncBuffer
}

// openPTY opens a pseudo-terminal of rows x cols and starts copying its
// screen; everything is closed when the test ends.
func openPTY(t *testing.T, rows, cols uint16) *pty {
	t.Helper()
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(master)
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(master, unix.TIOCGPTN)
	if err != nil {
		unix.Close(master)
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		unix.Close(master)
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	p := &pty{master: master, tty: tty, screen: &syncBuffer{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := unix.Read(master, buf)
			if k > 0 {
				p.screen.Write(buf[:k])
			}
			if err != nil || k == 0 {
				return // EIO once no process holds the terminal
			}
		}
	}()
	t.Cleanup(func() {
		tty.Close()
		<-done
		unix.Close(master)
	})
	return p
}

// typ writes s to the terminal, as typed keys.
func (p *pty) typ(t *testing.T, s string) {
	t.Helper()
	if _, err := unix.Write(p.master, []byte(s)); err != nil {
		t.Fatalf("typing %q: %v", s, err)
	}
}
