package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// runSink accepts TCP connections, reads each to its end, discarding the
// data, and prints one line per connection:
//
//	10.128.0.5:41234 1000000000 bytes in 1.2s: 833333333 bytes/s (833.3 MB/s)
func runSink(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	port := fs.Int("port", 9000, "TCP port to listen on, on every address")
	if err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	fmt.Fprintf(stdout, "sink listening on %s\n", l.Addr())
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer conn.Close()
			start := time.Now()
			n, err := io.Copy(io.Discard, conn)
			d := time.Since(start)
			if err != nil {
				fmt.Fprintf(stdout, "%s %d bytes in %s, then %v\n", conn.RemoteAddr(), n, d, err)
				return
			}
			fmt.Fprintf(stdout, "%s %d bytes in %s: %.0f bytes/s (%.1f MB/s)\n", conn.RemoteAddr(), n, d, float64(n)/d.Seconds(), megabytesPerSecond(n, d))
		}()
	}
}

// runSend sends n bytes to a sink, waits until the sink has read them all
// (it closes the connection at the end), and prints the rate:
//
//	sent 1000000000 bytes in 1.2s: 833.3 MB/s
func runSend(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	addr := fs.String("addr", "", "HOST:PORT of a sink (required)")
	size := fs.String("bytes", "100M", "how much to send: a number of bytes, with an optional k, M or G suffix (powers of 1000)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long the whole transfer may take")
	if err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	n, err := parseSize(*size)
	if err != nil {
		return fmt.Errorf("-bytes: %w", err)
	}
	if *addr == "" {
		return fmt.Errorf("give the sink's -addr HOST:PORT")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for left := n; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		w, err := conn.Write(chunk)
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", n-left, err)
		}
		left -= int64(w)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	// The sink closes its end once it has read everything.
	if _, err := io.Copy(io.Discard, conn); err != nil {
		return fmt.Errorf("waiting for the sink to read it all: %w", err)
	}
	d2 := time.Since(start)
	fmt.Fprintf(stdout, "sent %d bytes in %s: %.1f MB/s\n", n, d2, megabytesPerSecond(n, d2))
	return nil
}

// parseSize reads a byte count like 1500, 64k, 100M or 2G (powers of 1000).
func parseSize(size string) (int64, error) {
	s, mult := size, int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult = 1e3
	case strings.HasSuffix(s, "M"):
		mult = 1e6
	case strings.HasSuffix(s, "G"):
		mult = 1e9
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive byte count like 1500, 64k, 100M or 2G", size)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%s bytes is too many", size)
	}
	return n * mult, nil
}

// megabytesPerSecond is n bytes over d in MB/s (10^6 bytes); 0 for no time.
func megabytesPerSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}
