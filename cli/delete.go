package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newDeleteCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "delete APP",
		Aliases: []string{"rm"},
		Short:   "Remove an app and all its services",
		Long: `Remove every service of an app. Their tasks are stopped and removed by the
cluster shortly after; "berth ps APP" shows them going away.`,
		Example: `  berth delete shop
  berth rm shop -n staging`,
		GroupID: groupApps,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				app := args[0]
				resp, err := c.DeleteApp(ctx, &berthv1.DeleteAppRequest{Namespace: c.namespace, App: app})
				if err != nil {
					return fmt.Errorf("delete app %s: %w", app, err)
				}
				if len(resp.GetRemovedServices()) == 0 {
					return fmt.Errorf("no app %q in namespace %q; see `berth get apps`", app, c.namespace)
				}
				for _, s := range resp.GetRemovedServices() {
					fmt.Fprintf(cmd.OutOrStdout(), "service %s removed\n", s)
				}
				return nil
			})
		},
	}
}
