package cli

import (
	"context"
	"fmt"
	"io"

	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"google.golang.org/protobuf/proto"
)

// progressModes are the values --progress takes.
var progressModes = []string{"auto", "tty", "plain"}

// displayMode turns a --progress word into the display's mode. auto is tty
// when the output is a terminal, else plain, so a redirected build log stays
// plain text (the display decides, when it is made).
func displayMode(mode string) (progressui.DisplayMode, error) {
	switch mode {
	case "", "auto":
		return progressui.AutoMode, nil
	case "tty":
		return progressui.TtyMode, nil
	case "plain":
		return progressui.PlainMode, nil
	}
	return "", usageErrorf("unknown --progress %q: use auto, tty or plain", mode)
}

// decodeStatus turns one BuildEvent.status, a marshalled BuildKit
// StatusResponse, into the update the progress display reads.
func decodeStatus(b []byte) (*bkclient.SolveStatus, error) {
	var resp controlapi.StatusResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("decode build progress: %w", err)
	}
	return bkclient.NewSolveStatus(&resp), nil
}

// progressDisplay shows BuildKit's progress as updates arrive, in its own
// goroutine; Close waits until it has drawn the last one.
type progressDisplay struct {
	updates chan *bkclient.SolveStatus
	done    chan error
}

// startProgress starts a display writing to out in mode.
func startProgress(ctx context.Context, out io.Writer, mode progressui.DisplayMode, name string) (*progressDisplay, error) {
	d, err := progressui.NewDisplay(out, mode, progressui.WithDesc(name, name))
	if err != nil {
		return nil, fmt.Errorf("progress display: %w", err)
	}
	p := &progressDisplay{updates: make(chan *bkclient.SolveStatus), done: make(chan error, 1)}
	go func() {
		// The display stops on its channel's close, not on ctx: the last
		// updates (the failing step's log) must be drawn even when the
		// build failed.
		_, err := d.UpdateFrom(context.WithoutCancel(ctx), p.updates)
		p.done <- err
	}()
	return p, nil
}

// show hands one update to the display.
func (p *progressDisplay) show(ss *bkclient.SolveStatus) { p.updates <- ss }

// Close ends the display and waits for it to finish drawing.
func (p *progressDisplay) Close() error {
	close(p.updates)
	return <-p.done
}
