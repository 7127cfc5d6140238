package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer that goroutines may write concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls until out holds a match of re, for up to 10 s.
func waitFor(t *testing.T, out *lockedBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("output %q has no match of %s", out.String(), re)
		}
		time.Sleep(wait)
	}
}

func TestSendToSink(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sinkOut := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- runSink(ctx, []string{"-port", "0"}, sinkOut) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sink: %v", err)
		}
	}()
	port := waitFor(t, sinkOut, regexp.MustCompile(`listening on .*:(\d+)\n`))[1]

	var sendOut bytes.Buffer
	if err := runSend(ctx, []string{"-addr", "127.0.0.1:" + port, "-bytes", "10M"}, &sendOut); err != nil {
		t.Fatalf("send: %v", err)
	}
	if !regexp.MustCompile(`^sent 10000000 bytes in \S+: [0-9.]+ MB/s\n$`).MatchString(sendOut.String()) {
		t.Errorf("send printed %q", sendOut.String())
	}
	waitFor(t, sinkOut, regexp.MustCompile(`127\.0\.0\.1:\d+ 10000000 bytes in \S+: \d+ bytes/s \([0-9.]+ MB/s\)\n`))
}

func TestLookupAndDNSBenchResolveLocalhost(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := runLookup(ctx, []string{"localhost"}, &out); err != nil || !strings.Contains(out.String(), "127.0.0.1\n") {
		t.Fatalf("lookup localhost: %v, printed %q", err, out.String())
	}
	out.Reset()
	if err := runDNSBench(ctx, []string{"-name", "localhost", "-n", "20"}, &out); err != nil {
		t.Fatalf("dnsbench: %v", err)
	}
	if !regexp.MustCompile(`^n=20 failed=0 p50_us=\d+ p99_us=\d+\n$`).MatchString(out.String()) {
		t.Errorf("dnsbench printed %q", out.String())
	}
	out.Reset()
	err := runLookup(ctx, []string{"-timeout", "2s", "no-such-name.invalid"}, &out)
	if err == nil {
		t.Errorf("lookup of a name that does not exist succeeded: %q", out.String())
	}
}
