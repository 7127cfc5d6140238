package cli

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/version"
)

// versionTimeout bounds the wait for the server, so that "berth version"
// answers promptly when the server is down.
const versionTimeout = 5 * time.Second

func newVersionCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Show the client's version and, when reachable, the server's",
		Example: `  berth version`,
		GroupID: groupCluster,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Client:\n Version:     %s\n Go version:  %s\n", version.String(), runtime.Version())
			c, err := o.connect(cmd)
			if err != nil {
				fmt.Fprintf(w, "Server:\n Not configured: %v\n", err)
				return nil
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), versionTimeout)
			defer cancel()
			v, err := c.Version(ctx, &berthv1.VersionRequest{})
			if err != nil {
				fmt.Fprintf(w, "Server:\n Unreachable: %v\n", err)
				return nil
			}
			fmt.Fprintf(w, "Server: %s\n Version:     %s\n Go version:  %s\n Cluster ID:  %s\n", c.cfg.Server, v.GetVersion(), v.GetGoVersion(), v.GetClusterId())
			return nil
		},
	}
}
