package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// topRow is one task's resource use, as `berth top` shows it.
type topRow struct {
	Task             string  `json:"task"`
	Namespace        string  `json:"namespace"`
	App              string  `json:"app"`
	Service          string  `json:"service"`
	Slot             uint64  `json:"slot,omitempty"`
	Node             string  `json:"node"`
	CPUPercent       float64 `json:"cpuPercent"`
	CPUUsageNanos    uint64  `json:"cpuUsageNanos"`
	MemoryBytes      uint64  `json:"memoryBytes"`
	MemoryLimitBytes uint64  `json:"memoryLimitBytes,omitempty"`
	Pids             uint32  `json:"pids"`
	// NetworkRxBytes and NetworkTxBytes are what the task received and
	// sent so far; the rates are over the node's last sample interval.
	NetworkRxBytes          uint64  `json:"networkRxBytes"`
	NetworkTxBytes          uint64  `json:"networkTxBytes"`
	NetworkRxBytesPerSecond float64 `json:"networkRxBytesPerSecond"`
	NetworkTxBytesPerSecond float64 `json:"networkTxBytesPerSecond"`
}

func newTopCommand(o *rootOptions) *cobra.Command {
	var node string
	cmd := &cobra.Command{
		Use:   "top [APP[/SERVICE]] [--node NODE]",
		Short: "Show the CPU and memory use of running tasks",
		Long: `Show what each running task uses now, as its node measures it: CPU (the
share of one core over the last moment; above 100% on several cores),
memory (without the page cache the kernel can reclaim at once), the memory
limit, and the number of processes. Nodes that do not answer in time are
named on standard error; their tasks are left out.`,
		Example: `  # Every running task of the namespace
  berth top

  # One service, as JSON
  berth top shop/web -o json

  # The tasks on one node
  berth top --node worker-2`,
		GroupID: groupApps,
		Args:    cobra.MaximumNArgs(1),
	}
	format := addOutputFlag(cmd)
	cmd.Flags().StringVar(&node, "node", "", "only tasks on this node (name or ID)")
	addAllNamespacesFlag(cmd, o)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		app, service, err := optionalAppService(args)
		if err != nil {
			return err
		}
		return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
			resp, err := c.Top(ctx, &berthv1.TopRequest{Namespace: c.namespace, App: app, Service: service, NodeId: node, AllNamespaces: c.allNamespaces})
			if err != nil {
				return fmt.Errorf("top: %w", err)
			}
			rows, err := (&topJoin{c: c}).rows(ctx, resp)
			if err != nil {
				return err
			}
			for _, n := range resp.GetUnreachable() {
				fmt.Fprintf(cmd.ErrOrStderr(), "berth: node %s did not answer; its tasks are not shown\n", n)
			}
			return printList(cmd.OutOrStdout(), *format, rows, func(tw io.Writer) {
				fmt.Fprintln(tw, c.nsHeader()+"TASK\tSERVICE.SLOT\tNODE\tCPU %\tMEM\tMEM LIMIT\tPIDS")
				for _, r := range rows {
					name := r.App + "/" + r.Service
					if r.Slot > 0 {
						name += "." + strconv.FormatUint(r.Slot, 10)
					}
					fmt.Fprintf(tw, "%s%s\t%s\t%s\t%.1f\t%s\t%s\t%d\n", c.nsCell(r.Namespace), shortID(r.Task), name, r.Node,
						r.CPUPercent, orDash(bytesColumn(int64(r.MemoryBytes))), orDash(bytesColumn(int64(r.MemoryLimitBytes))), r.Pids)
				}
			})
		})
	}
	return cmd
}

// topJoin joins stats with their tasks' services and nodes' names. It
// keeps what it listed, and lists again only when the stats name a task
// it does not know: a refreshing display lists tasks once, not at every
// refresh.
type topJoin struct {
	c     *cluster
	tasks map[string]*berthv1.Task
	names map[string]string
}

// rows are the stats of resp, joined.
func (j *topJoin) rows(ctx context.Context, resp *berthv1.TopResponse) ([]topRow, error) {
	rows := []topRow{}
	if len(resp.GetTasks()) == 0 {
		return rows, nil
	}
	if err := j.refresh(ctx, resp); err != nil {
		return nil, err
	}
	for _, st := range resp.GetTasks() {
		r := topRow{
			Task: st.GetTaskId(), Node: j.names[st.GetNodeId()], CPUPercent: st.GetCpuPercent(), CPUUsageNanos: st.GetCpuUsageNanos(),
			MemoryBytes: st.GetMemoryBytes(), MemoryLimitBytes: st.GetMemoryLimitBytes(), Pids: st.GetPids(),
			NetworkRxBytes: st.GetNetworkRxBytes(), NetworkTxBytes: st.GetNetworkTxBytes(),
			NetworkRxBytesPerSecond: st.GetNetworkRxBytesPerSecond(), NetworkTxBytesPerSecond: st.GetNetworkTxBytesPerSecond(),
		}
		if r.Node == "" {
			r.Node = shortID(st.GetNodeId())
		}
		if t := j.tasks[st.GetTaskId()]; t != nil {
			r.Namespace, r.App, r.Service, r.Slot = t.GetNamespace(), t.GetApp(), t.GetService(), t.GetSlot()
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// refresh lists the tasks and nodes when resp names a task not listed
// yet.
func (j *topJoin) refresh(ctx context.Context, resp *berthv1.TopResponse) error {
	known := j.tasks != nil
	for _, st := range resp.GetTasks() {
		if _, ok := j.tasks[st.GetTaskId()]; !ok {
			known = false
			break
		}
	}
	if known {
		return nil
	}
	tasks, err := j.c.ListTasks(ctx, &berthv1.ListTasksRequest{Namespace: j.c.namespace, AllNamespaces: j.c.allNamespaces})
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	j.tasks = map[string]*berthv1.Task{}
	for _, t := range tasks.GetTasks() {
		j.tasks[t.GetMeta().GetId()] = t
	}
	j.names, err = j.c.nodeNames(ctx)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
