package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// listing is one read of what a listing command shows: the rows, what
// tells two reads apart (the rows without what changes on its own, such as
// heartbeat times), and how to draw them as a table.
type listing struct {
	rows  any
	key   any
	table func(w io.Writer)
}

// clearScreen moves the cursor home and clears a terminal.
const clearScreen = "\x1b[H\x1b[2J"

// watchSeparator is printed between two drawings when the output is not a
// terminal.
const watchSeparator = "---\n"

// addWatchFlag adds -w/--watch to a listing command.
func addWatchFlag(cmd *cobra.Command) *bool {
	var watch bool
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after listing, draw the list again each time it changes, until Ctrl-C")
	return &watch
}

// show prints one read, or with watch, follows app ("" for the whole
// namespace) and draws the list again each time it changes, until ctx ends
// (Ctrl-C), which is the way to stop and no failure. On a terminal each
// drawing replaces the last, and is redrawn at least every poll interval
// so the ages stay true; elsewhere a changed list is printed after a
// separator line.
func (c *cluster) show(ctx context.Context, w io.Writer, f outputFormat, watch bool, app string, read func(context.Context) (listing, error)) error {
	if !watch {
		l, err := read(ctx)
		if err != nil {
			return err
		}
		return printList(w, f, l.rows, l.table)
	}
	tty, color := terminal(w), colorOutput(w)
	var last []byte
	drawn := false
	err := c.follow(ctx, app, func(ctx context.Context) (bool, error) {
		l, err := read(ctx)
		if err != nil {
			return false, err
		}
		key, err := json.Marshal(l.key)
		if err != nil {
			return false, fmt.Errorf("encode list: %w", err)
		}
		if drawn && !tty && bytes.Equal(key, last) {
			return false, nil
		}
		last = key
		var buf bytes.Buffer
		switch {
		case tty:
			buf.WriteString(clearScreen)
		case drawn && f != formatJSON:
			// A stream of JSON documents needs no separator, and one
			// would break it.
			buf.WriteString(watchSeparator)
		}
		if err := writeList(&buf, f, l.rows, l.table, color); err != nil {
			return false, err
		}
		drawn = true
		_, err = w.Write(buf.Bytes())
		return false, err
	})
	if isCanceled(ctx, err) {
		return nil
	}
	return err
}
