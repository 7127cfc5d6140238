package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// worker is the voting app's worker: it takes the votes waiting in one
// key/value store (the cache, key "votes") and adds them to the total in
// another (the db, key "total"). Both are testapp servers, named by URL.
type worker struct {
	from, to string
	client   *http.Client
}

// move takes the waiting votes and adds them to the total. It returns how
// many it moved and the new total (0, 0 when none waited). Votes it took
// but could not add are put back.
func (w *worker) move(ctx context.Context) (moved, total int, err error) {
	body, err := fetch(ctx, w.client, http.MethodDelete, w.from+"/kv/votes", "")
	if status := (*statusError)(nil); errors.As(err, &status) && status.code == http.StatusNotFound {
		return 0, 0, nil // no vote waits
	}
	if err != nil {
		return 0, 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(body))
	if err != nil {
		return 0, 0, fmt.Errorf("votes at %s: %w", w.from, err)
	}
	if n == 0 {
		return 0, 0, nil
	}
	body, err = fetch(ctx, w.client, http.MethodPost, w.to+"/kv/total", strconv.Itoa(n))
	if err == nil {
		total, err = strconv.Atoi(strings.TrimSpace(body))
		if err != nil {
			return n, 0, fmt.Errorf("total at %s: %w", w.to, err)
		}
		return n, total, nil
	}
	if _, backErr := fetch(ctx, w.client, http.MethodPost, w.from+"/kv/votes", strconv.Itoa(n)); backErr != nil {
		return 0, 0, errors.Join(err, fmt.Errorf("%d votes are lost: %w", n, backErr))
	}
	return 0, 0, err
}

// runWorker moves votes every period until it is told to stop; a failed
// move is reported on stderr and tried again on the next tick.
func runWorker(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	from := fs.String("from", "http://cache:8080", "testapp server holding the waiting votes")
	to := fs.String("to", "http://db:8080", "testapp server holding the total")
	every := fs.Duration("every", 200*time.Millisecond, "how often to move votes")
	if err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	w := &worker{from: strings.TrimSuffix(*from, "/"), to: strings.TrimSuffix(*to, "/"), client: &http.Client{Timeout: 5 * time.Second}}
	fmt.Fprintf(stdout, "worker moving votes from %s to %s every %s\n", w.from, w.to, *every)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		moved, total, err := w.move(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			fmt.Fprintln(os.Stderr, "worker:", err)
		case moved > 0:
			fmt.Fprintf(stdout, "moved %d votes, total %d\n", moved, total)
		}
	}
}
