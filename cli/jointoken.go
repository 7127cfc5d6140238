package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newJoinTokenCommand(o *rootOptions) *cobra.Command {
	var (
		rotate bool
		ttl    time.Duration
		uses   uint32
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "join-token",
		Short: "Show the token that lets a machine join the cluster as a node",
		Long: `Show the join token, and the command that makes another machine a node of
this cluster. A token is made when there is no valid one. --rotate makes a
new token and revokes the old ones (nodes that already joined keep working).
--uses N makes a new token that admits N nodes and is then used up; add
--rotate to revoke the others too.`,
		Example: `  berth join-token
  berth join-token --rotate --ttl 1h
  berth join-token --rotate --uses 1   # for one machine
  TOKEN=$(berth join-token -q)`,
		GroupID: groupCluster,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return usageErrorf("--ttl %s is negative: give a positive duration such as 24h", ttl)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.JoinTokenRequest{Rotate: rotate, Uses: uses}
				if ttl > 0 {
					req.Ttl = durationpb.New(ttl)
				}
				resp, err := c.JoinToken(ctx, req)
				if err != nil {
					return fmt.Errorf("join token: %w", err)
				}
				w := cmd.OutOrStdout()
				if quiet {
					fmt.Fprintln(w, resp.GetToken())
					return nil
				}
				fmt.Fprintf(w, "To add a node to this cluster, run on it:\n\n    berth agent --join %s --token %s\n\n", c.cfg.Server, resp.GetToken())
				if exp := resp.GetExpiresAt(); exp != nil {
					fmt.Fprintf(w, "The token expires at %s.\n", exp.AsTime().Local().Format(time.RFC1123))
				}
				if uses > 0 {
					fmt.Fprintf(w, "It admits %s, then it is used up.\n", plural(int(uses), "node"))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "make a new token and revoke the old ones")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "lifetime of a new token, e.g. 1h (default: the server's)")
	cmd.Flags().Uint32Var(&uses, "uses", 0, "make a new token that admits this many nodes (default: no limit)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the token")
	return cmd
}
