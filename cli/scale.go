package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// scaleTarget is one APP/SERVICE=N argument of "berth scale".
type scaleTarget struct {
	app, service string
	replicas     uint64
}

// parseScaleTarget reads APP/SERVICE=N.
func parseScaleTarget(arg string) (scaleTarget, error) {
	const form = "use APP/SERVICE=N, such as shop/web=3"
	ref, count, ok := strings.Cut(arg, "=")
	if !ok {
		return scaleTarget{}, usageErrorf("%q has no replica count: %s", arg, form)
	}
	app, service, err := splitAppService(ref)
	if err != nil || service == "" {
		return scaleTarget{}, usageErrorf("%q does not name a service as APP/SERVICE: %s", arg, form)
	}
	n, err := strconv.ParseUint(count, 10, 64)
	if err != nil {
		return scaleTarget{}, usageErrorf("%q: replicas %q is not a whole number of 0 or more: %s", arg, count, form)
	}
	return scaleTarget{app: app, service: service, replicas: n}, nil
}

func newScaleCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "scale APP/SERVICE=N [APP/SERVICE=N...]",
		Short: "Set the number of replicas of services",
		Long: `Set how many tasks replicated services run. Scaling keeps the spec version:
tasks are added or stopped, and the ones that run are left alone.

The Compose file still says what it said: the next apply sets its replicas
again. Global services run one task on each eligible node and cannot be
scaled.`,
		Example: `  # One service
  berth scale shop/web=5

  # Several at once
  berth scale shop/web=5 shop/worker=2`,
		GroupID: groupApps,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Every argument is checked before anything changes.
			targets := make([]scaleTarget, len(args))
			for i, arg := range args {
				t, err := parseScaleTarget(arg)
				if err != nil {
					return err
				}
				targets[i] = t
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				out, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
				failed := 0
				for _, t := range targets {
					_, err := c.ScaleService(ctx, &berthv1.ScaleServiceRequest{
						Namespace: c.namespace, App: t.app, Service: t.service, Replicas: t.replicas,
					})
					if err != nil {
						// One service that cannot be scaled does not stop the
						// others, as a user listing several expects.
						if len(targets) == 1 {
							return fmt.Errorf("scale %s/%s: %w", t.app, t.service, err)
						}
						fmt.Fprintf(stderr, "berth: scale %s/%s: %s\n", t.app, t.service, userMessage(err))
						failed++
						continue
					}
					fmt.Fprintf(out, "%s scaled to %d\n", t.service, t.replicas)
				}
				if failed > 0 {
					return fmt.Errorf("%d of %d services were not scaled", failed, len(targets))
				}
				return nil
			})
		},
	}
}
