package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newCACommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ca",
		Short:   "Manage the cluster's certificate authority",
		GroupID: groupCluster,
		Args:    unknownCommand,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newCARotateCommand(o))
	return cmd
}

func newCARotateCommand(o *rootOptions) *cobra.Command {
	var finish, force bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the cluster CA without nodes joining again",
		Long: `Replace the cluster's certificate authority in two steps.

berth ca rotate makes a new CA, certified by the current one (a cross-signed
intermediate). From then on servers issue certificates from the new CA, and
servers and nodes trust both CAs: each server renews its own certificate and
rewrites its admin config (the file of berth server --config), and each
connected node renews its certificate over its session, keeping its id and
its containers. Certificates of the old CA keep working meanwhile.

berth ca rotate --finish then drops the old CA. It is refused while a node
still holds a certificate of the old CA (a node that was down renews when it
reconnects); --force drops it anyway, and such nodes must join again. Client
configs whose certificate the old CA signed stop working: use the admin
config a server rewrote, or make new ones with berth user create.

Join tokens made before the rotation work until --finish; print new ones with
berth join-token.`,
		Example: `  berth ca rotate
  berth ca rotate --finish`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if force && !finish {
				return usageErrorf("--force only goes with --finish")
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.RotateCA(ctx, &berthv1.RotateCARequest{Finish: finish, Force: force})
				if err != nil {
					return fmt.Errorf("rotating the cluster CA: %w", err)
				}
				w := cmd.OutOrStdout()
				pending := resp.GetPendingNodes()
				if finish {
					fmt.Fprintln(w, "The CA rollover is finished: only the new CA is trusted.")
					if len(pending) > 0 {
						fmt.Fprintf(w, "These nodes hold a certificate of the old CA and must join again: %s\n", strings.Join(pending, ", "))
					}
					fmt.Fprintln(w, "Client configs with a certificate of the old CA no longer work; servers rewrote their admin config with the new CA.")
					return nil
				}
				fmt.Fprintln(w, "Started a CA rollover: servers now issue certificates from the new CA and trust both.")
				fmt.Fprintln(w, "Servers renew their certificates and rewrite their admin config (the file of `berth server --config`);")
				fmt.Fprintln(w, "connected nodes renew theirs over their session.")
				if len(pending) > 0 {
					fmt.Fprintf(w, "Nodes still to renew: %s\n", strings.Join(pending, ", "))
				}
				fmt.Fprintln(w, "Your current config keeps working until the rollover is finished. Copy the rewritten admin config")
				fmt.Fprintln(w, "from a server (or make one with `berth user create`), then run `berth ca rotate --finish`.")
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&finish, "finish", false, "end the rollover: stop trusting the old CA")
	cmd.Flags().BoolVar(&force, "force", false, "with --finish: end it even while nodes hold a certificate of the old CA")
	return cmd
}
