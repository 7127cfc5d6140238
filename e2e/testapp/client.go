package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// resolver is Go's own resolver (the only one in a CGO_ENABLED=0 build):
// it reads /etc/resolv.conf and keeps no cache, so every lookup asks the
// server.
var resolver = &net.Resolver{PreferGo: true}

// runGet makes one request and prints the body.
func runGet(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "how long the whole request may take")
	method := fs.String("X", http.MethodGet, "request method")
	data := fs.String("d", "", "request body")
	if err := parseFlags(fs, args, 1, "URL"); err != nil {
		return err
	}
	body, err := fetch(ctx, &http.Client{Timeout: *timeout}, *method, fs.Arg(0), *data)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, body)
	return err
}

// fetch makes one request and returns the body of a 2xx answer; any other
// status is an error that carries the body.
func fetch(ctx context.Context, client *http.Client, method, url, body string) (string, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s %s: reading the body: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return string(b), &statusError{method: method, url: url, status: resp.Status, code: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	return string(b), nil
}

// statusError is an answer whose status is not 2xx.
type statusError struct {
	method, url, status, body string
	code                      int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", e.method, e.url, e.status, e.body)
}

// runLookup prints the addresses of a name, one a line.
func runLookup(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "how long the lookup may take")
	if err := parseFlags(fs, args, 1, "NAME"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	addrs, err := resolver.LookupHost(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%s has no address", fs.Arg(0))
	}
	for _, a := range addrs {
		fmt.Fprintln(stdout, a)
	}
	return nil
}

// runDNSBench resolves a name n times, one lookup after the other, and
// prints the median and 99th percentile latency in microseconds:
//
//	n=1000 failed=0 p50_us=180 p99_us=950
//
// It fails when any lookup failed.
func runDNSBench(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dnsbench", flag.ContinueOnError)
	name := fs.String("name", "", "name to resolve (required)")
	n := fs.Int("n", 1000, "number of lookups")
	timeout := fs.Duration("timeout", 2*time.Second, "how long one lookup may take")
	if err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	if *name == "" || *n < 1 {
		return fmt.Errorf("give a -name and a -n of at least 1")
	}
	times := make([]time.Duration, 0, *n)
	failed := 0
	var lastErr error
	for range *n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start := time.Now()
		lctx, cancel := context.WithTimeout(ctx, *timeout)
		addrs, err := resolver.LookupHost(lctx, *name)
		cancel()
		if err != nil || len(addrs) == 0 {
			failed++
			lastErr = err
			continue
		}
		times = append(times, time.Since(start))
	}
	fmt.Fprintf(stdout, "n=%d failed=%d p50_us=%d p99_us=%d\n", *n, failed,
		percentile(times, 50).Microseconds(), percentile(times, 99).Microseconds())
	if failed > 0 {
		return fmt.Errorf("%d of %d lookups of %s failed, the last with: %v", failed, *n, *name, lastErr)
	}
	return nil
}

// percentile returns the p-th percentile of times by the nearest-rank
// method (the smallest value at or above p percent of them), 0 for none.
// It sorts times.
func percentile(times []time.Duration, p int) time.Duration {
	if len(times) == 0 {
		return 0
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	rank := (p*len(times) + 99) / 100 // ceil(p/100 * n)
	return times[max(rank, 1)-1]
}
