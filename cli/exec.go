package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newExecCommand(o *rootOptions) *cobra.Command {
	var (
		interactive, tty bool
		env              []string
		user, workdir    string
	)
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] [-e KEY=VALUE] [-u USER] [-w DIR] TASK-ID|APP/SERVICE[.SLOT] -- COMMAND [ARG...]",
		Short: "Run a command in a running task's container",
		Long: `Run a command inside the container of a running task, with the container's
environment, user and working directory unless -e, -u or -w change them.
APP/SERVICE picks the service's running task with the lowest slot;
APP/SERVICE.SLOT or a task ID prefix (see berth ps) picks one task.

-i sends standard input to the command; -t gives it a terminal, puts the
local terminal in raw mode while it runs, and follows window size changes.
berth exec exits with the command's exit code.`,
		Example: `  # One command, its output and exit code
  berth exec shop/web -- cat /etc/hostname

  # A shell in replica 2 of the web service
  berth exec -it shop/web.2 -- sh

  # As another user, elsewhere, with a variable
  berth exec -u nobody -w /tmp -e DEBUG=1 3f9a2c -- env`,
		GroupID: groupApps,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, command := args[0], args[1:]
			if len(command) > 0 && command[0] == "--" {
				command = command[1:]
			}
			if len(command) == 0 {
				return usageErrorf("no command to run: give it after the task, as in `berth exec %s -- sh`", target)
			}
			for _, kv := range env {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return usageErrorf("-e %q is not KEY=VALUE", kv)
				}
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				start := &berthv1.ExecStart{
					Namespace: c.namespace, Command: command, Tty: tty, Stdin: interactive,
					Env: env, User: user, WorkingDir: workdir,
				}
				var req berthv1.LogsRequest
				if _, err := logTarget(cmd, c, target, &req); err != nil {
					return err
				}
				start.TaskId, start.App, start.Service = req.TaskId, req.App, req.Service
				if start.TaskId != "" {
					start.App, start.Service = "", ""
				}
				code, err := runExec(ctx, c, start, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
				if err != nil {
					return fmt.Errorf("exec in %s: %w", target, err)
				}
				if code != 0 {
					return &exitCodeError{code: code}
				}
				return nil
			})
		},
	}
	// Everything after the task belongs to the command, flags included.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "send standard input to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "run the command on a terminal")
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "set an environment variable, KEY=VALUE (repeatable)")
	cmd.Flags().StringVarP(&user, "user", "u", "", "run as USER, a name or uid, with an optional :GROUP")
	cmd.Flags().StringVarP(&workdir, "workdir", "w", "", "run in this directory of the container")
	return cmd
}

// exitCodeError makes berth exit with a command's own non-zero exit code,
// after the command already said what it had to.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("the command exited with code %d", e.code) }

// runExec runs one exec session: it sends start, then in (with
// start.Stdin) and terminal size changes (with start.Tty and a local
// terminal, put in raw mode meanwhile), writes the output, and returns the
// command's exit code.
func runExec(ctx context.Context, c *cluster, start *berthv1.ExecStart, in io.Reader, stdout, stderr io.Writer) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fd := -1
	if start.Tty {
		fd = terminalFd(in)
	}
	if fd >= 0 {
		if sz, ok := terminalSize(fd); ok {
			start.Size = sz
		}
	}
	stream, err := c.Exec(ctx)
	if err != nil {
		return -1, err
	}
	var sendMu sync.Mutex
	send := func(m *berthv1.ExecRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	if err := send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Start{Start: start}}); err != nil {
		if _, rerr := stream.Recv(); rerr != nil {
			return -1, rerr // why the server ended the call
		}
		return -1, err
	}
	if fd >= 0 {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return -1, fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		// In raw mode ^C and ^\ go to the command; these signals still
		// end berth, through ctx, so the terminal is restored.
		stopSignals := cancelOnSignals(cancel, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM)
		defer stopSignals()
		stopResizes := forwardResizes(ctx, fd, send)
		defer stopResizes()
	}
	if start.Stdin {
		// The copy ends at the end of input, or when a send fails once the
		// call is over. A read from a terminal cannot be interrupted: then
		// the goroutine ends with the process.
		go copyStdin(in, send)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return -1, errors.New("the session ended without the command's exit code")
		}
		if err != nil {
			return -1, err
		}
		switch p := msg.GetPart().(type) {
		case *berthv1.ExecResponse_Stdout:
			stdout.Write(p.Stdout)
		case *berthv1.ExecResponse_Stderr:
			stderr.Write(p.Stderr)
		case *berthv1.ExecResponse_ExitCode:
			return int(p.ExitCode), nil
		}
	}
}

// copyStdin sends what in holds as stdin, then says the input is closed.
func copyStdin(in io.Reader, send func(*berthv1.ExecRequest) error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			if send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Stdin{Stdin: chunk}}) != nil {
				return
			}
		}
		if err != nil {
			_ = send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_StdinClosed{StdinClosed: true}})
			return
		}
	}
}

// cancelOnSignals calls cancel when one of sigs arrives, until stop.
func cancelOnSignals(cancel context.CancelFunc, sigs ...os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ch:
			cancel()
		case <-quit:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(quit)
		<-done
	}
}

// terminalSize returns the size of terminal fd.
func terminalSize(fd int) (*berthv1.TerminalSize, bool) {
	w, h, err := term.GetSize(fd)
	if err != nil {
		return nil, false
	}
	return &berthv1.TerminalSize{Width: uint32(w), Height: uint32(h)}, true
}
