package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newVolumeCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "volume",
		Aliases: []string{"volumes", "vol"},
		Short:   "Manage the named volumes that keep services' data",
		Long: `Manage named volumes. A named volume keeps a service's data on one node
across its tasks: a replicated service has one per slot ("<volume>.<slot>",
as in shop_db-data.1), a global service one per node ("<volume>.<node>").
A slot's tasks stay on the node that holds its volume: while that node is
down or drained, the slot waits ("berth ps" says for which node) instead of
starting elsewhere with an empty volume.

Volumes outlive their tasks, rolling updates and "berth delete APP"; they
go with "berth volume rm" or "berth delete APP --volumes".`,
		GroupID: groupApps,
	}
	cmd.AddCommand(newVolumeListCommand(o), newVolumeInspectCommand(o), newVolumeRemoveCommand(o))
	requireSubcommand(cmd)
	return cmd
}

// volumeRow is one volume as `berth volume ls` and `inspect` show it.
type volumeRow struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Source    string            `json:"source"`
	App       string            `json:"app,omitempty"`
	Service   string            `json:"service"`
	Slot      uint64            `json:"slot,omitempty"`
	Node      string            `json:"node,omitempty"`
	NodeID    string            `json:"nodeID,omitempty"`
	SizeBytes int64             `json:"sizeBytes"`
	SizeError string            `json:"sizeError,omitempty"`
	Task      string            `json:"task,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Created   time.Time         `json:"created,omitzero"`
}

func toVolumeRow(s *berthv1.VolumeSummary) volumeRow {
	v := s.GetVolume()
	r := volumeRow{
		Namespace: v.GetNamespace(), Name: v.GetName(), Source: v.GetSource(), App: v.GetApp(), Service: v.GetService(),
		Slot: v.GetSlot(), Node: s.GetNodeName(), NodeID: v.GetNodeId(), SizeBytes: s.GetSizeBytes(), SizeError: s.GetSizeError(),
		Task: s.GetTask(), Labels: v.GetLabels(),
	}
	if c := v.GetMeta().GetCreatedAt(); c != nil {
		r.Created = c.AsTime()
	}
	return r
}

// size is the SIZE column: "?" when the node could not say.
func (r volumeRow) size() string {
	switch {
	case r.SizeError != "":
		return "?"
	case r.SizeBytes == 0:
		return "0B"
	}
	return bytesColumn(r.SizeBytes)
}

// user is the TASK/SERVICE column: the task that uses the volume
// ("shop/db.1"), else its service, idle.
func (r volumeRow) user() string {
	if r.Task != "" {
		return r.Task
	}
	svc := r.Service
	if r.App != "" {
		svc = r.App + "/" + svc
	}
	if svc == "" {
		return "-"
	}
	return svc + " (idle)"
}

// owner says whose the volume is: its app, or "external".
func (r volumeRow) owner() string {
	if r.App == "" {
		return "external (kept by delete --volumes)"
	}
	return "app " + r.App
}

func newVolumeListCommand(o *rootOptions) *cobra.Command {
	var (
		app string
		out *outputFormat
	)
	cmd := &cobra.Command{
		Use:     "ls [--app APP]",
		Aliases: []string{"list"},
		Short:   "List the volumes with their node, size and the task that uses each",
		Long: `List the named volumes of the namespace (-n), or of one app (--app): each
one's node, its size on that node, and the task that uses it ("shop/db.1"),
or its service when no task does. The size is "?" when the node cannot be
asked; -o wide or -o json say why.`,
		Example: `  berth volume ls
  berth volume ls --app shop -o wide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListVolumes(ctx, &berthv1.ListVolumesRequest{Namespace: c.namespace, App: app, AllNamespaces: c.allNamespaces})
				if err != nil {
					return fmt.Errorf("list volumes: %w", err)
				}
				rows := []volumeRow{}
				for _, s := range resp.GetVolumes() {
					rows = append(rows, toVolumeRow(s))
				}
				wide := *out == formatWide
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					if wide {
						fmt.Fprintln(w, c.nsHeader()+"NAME\tNODE\tSIZE\tTASK/SERVICE\tSOURCE\tOWNER\tNOTE")
					} else {
						fmt.Fprintln(w, c.nsHeader()+"NAME\tNODE\tSIZE\tTASK/SERVICE")
					}
					for _, r := range rows {
						node := r.Node
						if node == "" {
							node = "-"
						}
						if wide {
							owner := r.App
							if owner == "" {
								owner = "external"
							}
							fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.nsCell(r.Namespace), r.Name, node, r.size(), r.user(), r.Source, owner, r.SizeError)
							continue
						}
						fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\n", c.nsCell(r.Namespace), r.Name, node, r.size(), r.user())
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "only the volumes of this app (and the external ones its tasks use)")
	out = addOutputFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

func newVolumeInspectCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:               "inspect NAME",
		Short:             "Show a volume: its node, size, owner and the task that uses it",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeVolumes),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				s, err := c.GetVolume(ctx, &berthv1.GetVolumeRequest{Namespace: c.namespace, Name: args[0]})
				if err != nil {
					return fmt.Errorf("inspect volume %s: %w", args[0], err)
				}
				r := toVolumeRow(s)
				w := cmd.OutOrStdout()
				if *out == formatJSON || *out == formatYAML {
					return printList(w, *out, r, nil)
				}
				size := r.size()
				if r.SizeError != "" {
					size = "unknown: " + r.SizeError
				}
				slot := ""
				if r.Slot > 0 {
					slot = strconv.FormatUint(r.Slot, 10)
				}
				var labels []string
				for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
					labels = append(labels, k+"="+r.Labels[k])
				}
				created := ""
				if !r.Created.IsZero() {
					created = r.Created.Local().Format(time.RFC3339)
				}
				fields(w,
					"Name", r.Name,
					"Namespace", r.Namespace,
					"Source", r.Source,
					"Owner", r.owner(),
					"Service", r.Service,
					"Slot", slot,
					"Node", r.Node,
					"Size", size,
					"Task", r.Task,
					"Labels", strings.Join(labels, ", "),
					"Created", created,
				)
				return nil
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newVolumeRemoveCommand(o *rootOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NAME [--force]",
		Aliases: []string{"remove"},
		Short:   "Remove a volume and its data, once no task meant to run uses it",
		Long: `Remove a named volume: its data on its node, then its record. It is
refused while a task meant to run uses the volume: scale the service down
or delete its app first.

When the volume's node is down or cannot be reached, --force removes only
the record: the data stays on that node, and the volume's slot starts
anew, on any node, with an empty volume. This is how a slot whose node is
gone for good is moved on purpose.`,
		Example: `  berth volume rm shop_db-data.2
  berth volume rm shop_db-data.1 --force   # its node is gone for good`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeVolumes),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var header metadata.MD
				_, err := c.RemoveVolume(ctx, &berthv1.RemoveVolumeRequest{Namespace: c.namespace, Name: args[0], Force: force}, grpc.Header(&header))
				if err != nil {
					return fmt.Errorf("remove volume %s: %w", args[0], err)
				}
				printWarnings(cmd.ErrOrStderr(), header)
				fmt.Fprintf(cmd.OutOrStdout(), "volume %s removed\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "when the volume's node cannot be reached, remove the record anyway; the data stays on the node")
	return cmd
}

// completeVolumes lists the volumes of the namespace.
func completeVolumes(ctx context.Context, c *cluster, _ string) ([]string, error) {
	resp, err := c.ListVolumes(ctx, &berthv1.ListVolumesRequest{Namespace: c.namespace})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var names []string
	for _, s := range resp.GetVolumes() {
		names = append(names, s.GetVolume().GetName())
	}
	return names, nil
}
