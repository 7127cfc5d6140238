// Command berth is Berth's one binary: the control plane (berth server),
// the node agent (berth agent), both at once (berth dev), and the CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthproject/berth/cli"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	roles := []*cobra.Command{newDevCommand(), newServerCommand(), newAgentCommand(), newUninstallCommand()}
	for _, c := range roles {
		c.GroupID = "roles"
	}
	root := cli.NewRoot(roles...)
	root.AddGroup(&cobra.Group{ID: "roles", Title: "Run Berth:"})
	os.Exit(cli.Execute(ctx, root))
}
