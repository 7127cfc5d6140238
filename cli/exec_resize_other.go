//go:build !unix

package cli

import (
	"context"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// resizePoll is how often the terminal's size is read where no signal
// tells of a change (Windows consoles).
const resizePoll = 250 * time.Millisecond

// forwardResizes sends the size of terminal fd each time it changes until
// stop is called. Without SIGWINCH it reads the size every resizePoll.
func forwardResizes(ctx context.Context, fd int, send func(*berthv1.ExecRequest) error) (stop func()) {
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(done)
		last, _ := terminalSize(fd)
		tick := time.NewTicker(resizePoll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				sz, ok := terminalSize(fd)
				if !ok || (last != nil && sz.Width == last.Width && sz.Height == last.Height) {
					continue
				}
				last = sz
				if send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Resize{Resize: sz}}) != nil {
					return
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
