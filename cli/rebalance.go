package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newRebalanceCommand(o *rootOptions) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rebalance [APP[/SERVICE]]",
		Short: "Move tasks toward an even spread over the nodes",
		Long: `Ask the orchestrator to move the tasks of replicated services toward an even
spread: after nodes joined or came back, tasks stay where they were placed
until asked. Tasks move a few at a time, each replacement started before
the task it replaces stops. Global services run one task per node and are
left out.

Without an argument, every service of the namespace is rebalanced; with
APP, the services of one app; with APP/SERVICE, one service. --wait follows
each service until its rebalance completes and says how many tasks moved.`,
		Example: `  # Every service of the namespace
  berth rebalance

  # One service, waiting until it is done
  berth rebalance shop/web --wait`,
		GroupID: groupCluster,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("timeout") && !wait {
				return usageErrorf("--timeout bounds --wait: add --wait")
			}
			req := &berthv1.RebalanceRequest{}
			var err error
			if req.App, req.Service, err = optionalAppService(args); err != nil {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req.Namespace = c.namespace
				var before map[string]*berthv1.RebalanceStatus
				if wait {
					var err error
					if before, err = c.rebalanceStates(ctx, req.App); err != nil {
						return err
					}
				}
				resp, err := c.Rebalance(ctx, req)
				if err != nil {
					return fmt.Errorf("rebalance: %w", err)
				}
				out := cmd.OutOrStdout()
				if len(resp.GetServices()) == 0 {
					fmt.Fprintf(out, "nothing to rebalance: no replicated service in namespace %q\n", c.namespace)
					return nil
				}
				if !wait {
					for _, s := range resp.GetServices() {
						fmt.Fprintf(out, "%s: rebalance requested\n", s)
					}
					return nil
				}
				return c.waitRebalanced(ctx, out, req.App, resp.GetServices(), before, timeout)
			})
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every service's rebalance completes")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// rebalanceStates maps the services of app (every app when "") to their
// rebalance status, as "app/service".
func (c *cluster) rebalanceStates(ctx context.Context, app string) (map[string]*berthv1.RebalanceStatus, error) {
	resp, err := c.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: c.namespace, App: app})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := map[string]*berthv1.RebalanceStatus{}
	for _, s := range resp.GetServices() {
		svc := s.GetService()
		out[svc.GetApp()+"/"+svc.GetName()] = svc.GetRebalance()
	}
	return out, nil
}

// rebalanceDone reports whether now is the end of the rebalance asked
// after before was read: completed, and not the completion of an earlier
// one.
func rebalanceDone(before, now *berthv1.RebalanceStatus) bool {
	if now.GetState() != berthv1.RebalanceState_REBALANCE_STATE_COMPLETED {
		return false
	}
	return before.GetState() != berthv1.RebalanceState_REBALANCE_STATE_COMPLETED ||
		!proto.Equal(before.GetRequestedAt(), now.GetRequestedAt())
}

// waitRebalanced follows the rebalance of services (as "app/service")
// until each completes, printing a line when one moves on.
func (c *cluster) waitRebalanced(ctx context.Context, w io.Writer, app string, services []string, before map[string]*berthv1.RebalanceStatus, timeout time.Duration) error {
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pending := map[string]string{}
	for _, s := range services {
		pending[s] = "requested"
	}
	var moved uint32
	err := c.follow(waitCtx, app, func(ctx context.Context) (bool, error) {
		states, err := c.rebalanceStates(ctx, app)
		if err != nil {
			return false, err
		}
		for _, s := range slices.Sorted(maps.Keys(pending)) {
			st, ok := states[s]
			switch {
			case !ok:
				fmt.Fprintf(w, "%s: removed before its rebalance completed\n", s)
				delete(pending, s)
			case rebalanceDone(before[s], st):
				line := fmt.Sprintf("%s: rebalanced, %s moved", s, plural(int(st.GetMoved()), "task"))
				// The server's message may count the moves again.
				msg, _ := strings.CutPrefix(st.GetMessage(), fmt.Sprintf("moved %d tasks; ", st.GetMoved()))
				if msg != "" {
					line += " (" + msg + ")"
				}
				fmt.Fprintln(w, line)
				moved += st.GetMoved()
				delete(pending, s)
			case st.GetState() == berthv1.RebalanceState_REBALANCE_STATE_MOVING && pending[s] != "moving":
				fmt.Fprintf(w, "%s: moving tasks (%d moved so far)\n", s, st.GetMoved())
				pending[s] = "moving"
			}
		}
		return len(pending) == 0, nil
	})
	switch {
	case err == nil:
		fmt.Fprintf(w, "rebalanced %s: %s moved\n", plural(len(services), "service"), plural(int(moved), "task"))
		return nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		var left []string
		for _, s := range slices.Sorted(maps.Keys(pending)) {
			left = append(left, s+" ("+pending[s]+")")
		}
		return fmt.Errorf("timed out after %s: the rebalance of %s has not completed; it goes on (see `berth events`)", timeout, strings.Join(left, ", "))
	case isCanceled(ctx, err):
		return fmt.Errorf("stopped waiting; the rebalance goes on: %w", err)
	}
	return err
}
