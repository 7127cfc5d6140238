package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// statsInterval is how often `berth stats` redraws: as often as `docker
// stats`, and long enough that the nodes' rates are over a fair interval.
const statsInterval = 2 * time.Second

func newStatsCommand(o *rootOptions) *cobra.Command {
	var (
		node     string
		noStream bool
	)
	cmd := &cobra.Command{
		Use:   "stats [APP[/SERVICE]] [--node NODE] [--no-stream]",
		Short: "Show a live view of running tasks' CPU, memory and network use",
		Long: `Show what each running task uses, as its node measures it, redrawn every
2 seconds like docker stats: CPU (the share of one core; above 100% on
several cores), memory in use and its limit, memory as a share of the
limit, bytes received and sent on the task's network interfaces, and the
number of processes. Ctrl-C ends it.

When standard output is not a terminal, or with --no-stream, one snapshot
is printed and the command ends; -o json or yaml print one snapshot too.
Nodes that do not answer in time are named; their tasks are left out.`,
		Example: `  # Every running task of the namespace, live
  berth stats

  # One service, once
  berth stats shop/web --no-stream

  # The tasks on one node, as JSON
  berth stats --node worker-2 -o json`,
		GroupID: groupApps,
		Args:    cobra.MaximumNArgs(1),
	}
	format := addOutputFlag(cmd)
	cmd.Flags().StringVar(&node, "node", "", "only tasks on this node (name or ID)")
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one snapshot and end, instead of a live view")
	addAllNamespacesFlag(cmd, o)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		app, service, err := optionalAppService(args)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		stream := !noStream && *format == formatTable && terminal(out)
		return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
			req := &berthv1.TopRequest{Namespace: c.namespace, App: app, Service: service, NodeId: node, AllNamespaces: c.allNamespaces}
			join := &topJoin{c: c}
			for {
				resp, err := c.Top(ctx, req)
				if err != nil {
					if stream && ctx.Err() != nil {
						return nil // Ctrl-C
					}
					return fmt.Errorf("stats: %w", err)
				}
				rows, err := join.rows(ctx, resp)
				if err != nil {
					if stream && ctx.Err() != nil {
						return nil
					}
					return err
				}
				if !stream {
					for _, n := range resp.GetUnreachable() {
						fmt.Fprintf(cmd.ErrOrStderr(), "berth: node %s did not answer; its tasks are not shown\n", n)
					}
					return printList(out, *format, rows, func(tw io.Writer) { statsTable(tw, c, rows) })
				}
				var buf bytes.Buffer
				buf.WriteString(clearScreen)
				if err := writeList(&buf, formatTable, rows, func(tw io.Writer) { statsTable(tw, c, rows) }, false); err != nil {
					return err
				}
				for _, n := range resp.GetUnreachable() {
					fmt.Fprintf(&buf, "node %s did not answer; its tasks are not shown\n", n)
				}
				if _, err := out.Write(buf.Bytes()); err != nil {
					return err
				}
				t := time.NewTimer(statsInterval)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
		})
	}
	return cmd
}

// statsTable writes rows as docker stats does, with the task's node.
func statsTable(tw io.Writer, c *cluster, rows []topRow) {
	fmt.Fprintln(tw, c.nsHeader()+"TASK\tNAME\tNODE\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O (RX / TX)\tPIDS")
	for _, r := range rows {
		name := r.App + "/" + r.Service
		if r.Slot > 0 {
			name += "." + strconv.FormatUint(r.Slot, 10)
		}
		memPercent := "-"
		if r.MemoryLimitBytes > 0 {
			memPercent = fmt.Sprintf("%.1f%%", float64(r.MemoryBytes)/float64(r.MemoryLimitBytes)*100)
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%.1f%%\t%s / %s\t%s\t%s / %s\t%d\n", c.nsCell(r.Namespace), shortID(r.Task), name, r.Node,
			r.CPUPercent, statsBytes(r.MemoryBytes), orDash(bytesColumn(int64(r.MemoryLimitBytes))), memPercent,
			statsBytes(r.NetworkRxBytes), statsBytes(r.NetworkTxBytes), r.Pids)
	}
}

// statsBytes is n in binary units, "0B" for nothing.
func statsBytes(n uint64) string {
	if n == 0 {
		return "0B"
	}
	return bytesColumn(int64(n))
}
