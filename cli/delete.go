package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newDeleteCommand(o *rootOptions) *cobra.Command {
	var volumes bool
	cmd := &cobra.Command{
		Use:     "delete APP [--volumes]",
		Aliases: []string{"rm"},
		Short:   "Remove an app and all its services",
		Long: `Remove every service of an app. Their tasks are stopped and removed by the
cluster shortly after; "berth ps APP" shows them going away.

The app's named volumes, and their data, are kept: applying the app again
finds them. --volumes removes them too, as "docker compose down -v" does:
it waits for the app's tasks to stop (at most the longest stop grace
period of its services, plus 10s), then removes the volumes the app's
Compose file defines; external volumes are kept. A volume whose node
cannot be reached is left, and named; "berth volume rm" removes it later.`,
		Example: `  berth delete shop
  berth rm shop -n staging
  berth delete shop --volumes`,
		GroupID: groupApps,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				app := args[0]
				resp, err := c.DeleteApp(ctx, &berthv1.DeleteAppRequest{Namespace: c.namespace, App: app, Volumes: volumes})
				if err != nil {
					return fmt.Errorf("delete app %s: %w", app, err)
				}
				if len(resp.GetRemovedServices()) == 0 && len(resp.GetRemovedVolumes()) == 0 {
					return fmt.Errorf("no app %q in namespace %q; see `berth get apps`", app, c.namespace)
				}
				for _, s := range resp.GetRemovedServices() {
					fmt.Fprintf(cmd.OutOrStdout(), "service %s removed\n", s)
				}
				for _, v := range resp.GetRemovedVolumes() {
					fmt.Fprintf(cmd.OutOrStdout(), "volume %s removed\n", v)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&volumes, "volumes", false, "also remove the app's own volumes, with their data, once its tasks have stopped")
	return cmd
}
