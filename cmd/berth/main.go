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
	// A containerd shim runs berth as a container's log driver: that
	// process does only that.
	runLogDriverIfAsked()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	roles := []*cobra.Command{newDevCommand(), newServerCommand(), newAgentCommand(), newUninstallCommand()}
	for _, c := range roles {
		c.GroupID = "roles"
	}
	restore := newSnapshotRestoreCommand()
	root := cli.NewRoot(append(roles, restore)...)
	moveUnder(root, restore, "snapshot")
	root.AddGroup(&cobra.Group{ID: "roles", Title: "Run Berth:"})
	os.Exit(cli.Execute(ctx, root))
}

// moveUnder moves the command named sub of root under root's command
// named parent. "berth snapshot restore" is made here, as the roles are,
// since it is local and uses etcd's server code, which the client
// commands do not carry; it is handed to cli.NewRoot with them (so its
// argument errors are usage errors too), then moved beside "save".
func moveUnder(root *cobra.Command, sub *cobra.Command, parent string) {
	for _, c := range root.Commands() {
		if c.Name() == parent {
			root.RemoveCommand(sub)
			c.AddCommand(sub)
			return
		}
	}
}
