package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newNodeRemoveCommand(o *rootOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NODE [--force]",
		Aliases: []string{"remove"},
		Short:   "Remove a node from the cluster, freeing its name and revoking its certificate",
		Long: `Remove a node from the cluster: its record goes, its name is free for
another agent to join with, and its certificate is revoked, so its agent
cannot connect again (to come back, it joins anew with a token after its
data directory's pki folder is deleted).

Its tasks are replaced on other nodes, as for a node that is down. Volumes
whose data is on the node stay, and the tasks that mount them wait for it;
"berth volume rm --force" gives that data up.

A connected node is refused: stop its agent first, or add --force to remove
it now and end its session.`,
		Example: `  berth node rm node-3
  berth node rm node-3 --force   # it is still connected`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.RemoveNode(ctx, &berthv1.RemoveNodeRequest{Node: args[0], Force: force})
				if err != nil {
					return fmt.Errorf("remove node %s: %w", args[0], err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), removedNodeLine(resp))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the node even though its agent is connected, ending its session")
	return cmd
}

// removedNodeLine says what removing a node did and left.
func removedNodeLine(resp *berthv1.RemoveNodeResponse) string {
	n := resp.GetNode()
	var b strings.Builder
	fmt.Fprintf(&b, "%s removed: its name is free", n.GetName())
	if n.GetCertificateSerial() != "" {
		fmt.Fprintf(&b, " and its certificate %s is revoked", n.GetCertificateSerial())
	}
	if t := resp.GetTasks(); t > 0 {
		fmt.Fprintf(&b, "; %s moving to other nodes", plural(int(t), "task"))
	}
	if v := resp.GetPinnedVolumes(); len(v) > 0 {
		fmt.Fprintf(&b, "\nvolumes %s stay: their data is on that machine, and the tasks that mount them wait (berth volume rm --force NAME gives the data up)",
			strings.Join(v, ", "))
	}
	return b.String()
}
