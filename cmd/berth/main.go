// Command berth is Berth's one binary: the control plane (berth server),
// the node agent (berth agent), both at once (berth dev), and the CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthproject/berth/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cli.NewRoot(newServerCommand(), newAgentCommand(), newDevCommand())
	os.Exit(cli.Execute(ctx, root))
}
