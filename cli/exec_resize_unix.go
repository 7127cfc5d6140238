//go:build unix

package cli

import (
	"context"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// forwardResizes sends the size of terminal fd each time it changes
// (SIGWINCH) until stop is called.
func forwardResizes(ctx context.Context, fd int, send func(*berthv1.ExecRequest) error) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-winch:
				sz, ok := terminalSize(fd)
				if !ok {
					continue
				}
				if send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Resize{Resize: sz}}) != nil {
					return
				}
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		cancel()
		<-done
	}
}
