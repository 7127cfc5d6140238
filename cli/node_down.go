package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newNodeDownCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "down NODE...",
		Short: "Confirm that nodes out of contact are down, so their tasks are replaced",
		Long: `Confirm that nodes out of contact are down: their tasks are replaced on
other nodes, as for any node found down.

When most nodes lose contact at once, the control plane assumes its own
network failed (see --mass-loss-share of berth server): it keeps them
unreachable and replaces nothing until contact returns, so a network blip
does not restart the whole cluster. If the machines really are gone, this
command says so. A node whose agent is connected is refused, and then no
node is marked; when its agent connects again, a node marked down is
ready again.`,
		Example: `  berth node down node-3
  berth node down node-3 node-4 node-5`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.MarkNodesDown(ctx, &berthv1.MarkNodesDownRequest{Nodes: args})
				if err != nil {
					return fmt.Errorf("mark nodes down: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), downNodesLine(resp))
				return nil
			})
		},
	}
}

// downNodesLine says which nodes are down and how many tasks move.
func downNodesLine(resp *berthv1.MarkNodesDownResponse) string {
	var names []string
	for _, n := range resp.GetNodes() {
		names = append(names, n.GetName())
	}
	line := strings.Join(names, ", ") + " down"
	if t := resp.GetTasks(); t > 0 {
		line += fmt.Sprintf(": %s moving to other nodes", plural(int(t), "task"))
	}
	return line
}
