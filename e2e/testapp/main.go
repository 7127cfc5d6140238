// Command testapp is the program inside Berth's `localhost/testapp` test
// image (busybox-static plus /bin/testapp), and a client the e2e tests run
// on the test's own network namespaces. It is built with CGO_ENABLED=0, so
// it resolves names with Go's own resolver from /etc/resolv.conf, which a
// static glibc busybox cannot do.
//
// Subcommands:
//
//	serve -port P [-name N] [-data DIR] [-require-file F]
//	                                 HTTP server, see serve.go for its routes
//	get [-X M] [-d BODY] [-timeout D] URL
//	                                 one request; prints the body; exit 1 on
//	                                 an error or a status other than 2xx
//	lookup [-timeout D] NAME         prints NAME's addresses; exit 1 if none
//	worker -from URL -to URL [-every D]
//	                                 moves the votes waiting at FROM/kv/votes
//	                                 into the total at TO/kv/total
//	dnsbench -name NAME [-n N]       resolves NAME N times; prints p50 and p99
//	sink -port P                     TCP server discarding what it reads;
//	                                 prints each connection's rate
//	send -addr HOST:PORT -bytes N    sends N bytes to a sink; prints the rate
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: it parses its own flags from args and writes
// its results to stdout.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"serve":    {"HTTP server: identity, health, key/value store, proxy", runServe},
	"get":      {"one HTTP request, prints the body", runGet},
	"lookup":   {"resolve a name, print its addresses", runLookup},
	"worker":   {"move votes from one key/value store to another", runWorker},
	"dnsbench": {"resolve a name N times, print p50 and p99 in microseconds", runDNSBench},
	"sink":     {"TCP server that discards data and prints each connection's rate", runSink},
	"send":     {"send N bytes to a sink, print the rate", runSend},
}

// errUsage marks a wrong command line; its message was already printed.
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "testapp: unknown command %q\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := cmd.run(ctx, os.Args[2:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "testapp %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: testapp COMMAND [FLAGS] [ARGS]")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-9s %s\n", name, commands[name].summary)
	}
}

// parseFlags parses args with fs and wants exactly nargs positional
// arguments after the flags.
func parseFlags(fs *flag.FlagSet, args []string, nargs int, argsUsage string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return errUsage // the flag package printed why
	}
	if fs.NArg() != nargs {
		fmt.Fprintf(os.Stderr, "usage: testapp %s [FLAGS] %s\n", fs.Name(), argsUsage)
		fs.PrintDefaults()
		return errUsage
	}
	return nil
}
