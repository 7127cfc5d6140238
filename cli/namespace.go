package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newNamespaceCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "namespace",
		Aliases: []string{"namespaces", "ns"},
		Short:   "Manage namespaces: the tenants of the cluster, with their quotas",
		Long: `Manage namespaces. A namespace is a tenant: its apps, networks, volumes,
secrets and configs are its own, and the names, DNS and networks of one are
invisible to another. Commands work in the namespace of -n/--namespace (or
the config's, else "default").

A namespace needs no record to be used: applying to a new one just works,
without a quota. "namespace create" records one with a quota, which apply,
scale, restart and rollback then keep to: they are refused when the
namespace's services would reserve more CPU or memory, want more tasks, or
hold more named volumes than it allows. A quota of 0 bounds nothing.`,
		GroupID: groupCluster,
	}
	cmd.AddCommand(newNamespaceCreateCommand(o), newNamespaceUpdateCommand(o), newNamespaceListCommand(o),
		newNamespaceDescribeCommand(o), newNamespaceRemoveCommand(o))
	requireSubcommand(cmd)
	return cmd
}

// quotaFlags are the flags that set a namespace's quota.
type quotaFlags struct {
	cpu, memory    string
	tasks, volumes int64
}

func (q *quotaFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&q.cpu, "cpu", "", "CPUs the namespace's tasks may reserve in all, like 2 or 0.5 (0: no bound)")
	cmd.Flags().StringVar(&q.memory, "memory", "", "memory the namespace's tasks may reserve in all, like 4g or 512m (0: no bound)")
	cmd.Flags().Int64Var(&q.tasks, "tasks", 0, "tasks the namespace may want running (0: no bound)")
	cmd.Flags().Int64Var(&q.volumes, "volumes", 0, "named volumes the namespace may hold, one per slot and volume (0: no bound)")
}

// apply sets the quota fields whose flags were given into q, and
// returns a usage error for a value that does not parse.
func (q *quotaFlags) apply(cmd *cobra.Command, into *berthv1.NamespaceQuota) error {
	f := cmd.Flags()
	if f.Changed("cpu") {
		m, err := parseCPUs(q.cpu)
		if err != nil {
			return usageErrorf("--cpu %q: %v", q.cpu, err)
		}
		into.CpuMillis = m
	}
	if f.Changed("memory") {
		b, err := parseMemory(q.memory)
		if err != nil {
			return usageErrorf("--memory %q: %v", q.memory, err)
		}
		into.MemoryBytes = b
	}
	if f.Changed("tasks") {
		if q.tasks < 0 {
			return usageErrorf("--tasks %d: give 0 (no bound) or more", q.tasks)
		}
		into.Tasks = q.tasks
	}
	if f.Changed("volumes") {
		if q.volumes < 0 {
			return usageErrorf("--volumes %d: give 0 (no bound) or more", q.volumes)
		}
		into.Volumes = q.volumes
	}
	return nil
}

func (q *quotaFlags) changed(cmd *cobra.Command) bool {
	f := cmd.Flags()
	return f.Changed("cpu") || f.Changed("memory") || f.Changed("tasks") || f.Changed("volumes")
}

// parseCPUs reads CPUs as a decimal ("2", "0.5") or millicores ("500m").
func parseCPUs(s string) (int64, error) {
	if m, ok := strings.CutSuffix(s, "m"); ok {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("write CPUs like 2, 0.5 or 500m")
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*1000 > math.MaxInt64/2 {
		return 0, fmt.Errorf("write CPUs like 2, 0.5 or 500m")
	}
	return int64(math.Round(f * 1000)), nil
}

// parseMemory reads a size the way Docker and Compose do: a number with an
// optional unit b, k, m, g or t (binary: k is 1024), with or without a
// trailing b or ib ("512m", "4GiB", "1.5g").
func parseMemory(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := 1.0
	if t != "" {
		if i := strings.IndexByte("kmgt", t[len(t)-1]); i >= 0 {
			mult = math.Pow(1024, float64(i+1))
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("write a size like 512m, 4g or 1.5GiB")
	}
	return int64(f * mult), nil
}

func newNamespaceCreateCommand(o *rootOptions) *cobra.Command {
	var (
		q      quotaFlags
		labels []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--cpu N] [--memory SIZE] [--tasks N] [--volumes N] [--label KEY=VALUE]...",
		Short: "Record a namespace with its quota",
		Long: `Record the namespace NAME (a DNS label: lowercase letters, digits and '-')
with a quota. The flags not given bound nothing. A namespace already in use
without a record gets one; one already recorded is refused (use update).`,
		Example: `  berth namespace create team-a --cpu 2 --memory 4g --tasks 50 --volumes 10
  berth ns create sandbox --tasks 5`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			quota := &berthv1.NamespaceQuota{}
			if err := q.apply(cmd, quota); err != nil {
				return err
			}
			lm, err := parseLabelFlags(labels)
			if err != nil {
				return usageErrorf("%v", err)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				ns, err := c.CreateNamespace(ctx, &berthv1.CreateNamespaceRequest{Name: args[0], Quota: quota, Labels: lm})
				if err != nil {
					return fmt.Errorf("create namespace %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "namespace %s created (quota: %s)\n", ns.GetName(), quotaText(ns.GetQuota()))
				return nil
			})
		},
	}
	q.add(cmd)
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE; repeat for several")
	return cmd
}

func newNamespaceUpdateCommand(o *rootOptions) *cobra.Command {
	var q quotaFlags
	var blockSeverity string
	cmd := &cobra.Command{
		Use:   "update NAME [--cpu N] [--memory SIZE] [--tasks N] [--volumes N] [--block-severity S]",
		Short: "Change a namespace's quota",
		Long: `Change the quota of namespace NAME: each flag given replaces its value, the
others keep theirs; 0 removes a bound. A quota below what the namespace
uses now is allowed: what runs keeps running, and requests that need more
are refused until the use is under it.

--block-severity sets the namespace's scan gate: an apply whose images have
vulnerability findings at or above it (low, medium, high, critical) is
refused; none lets every image through whatever the cluster's gate says;
an empty value ("") uses the cluster's gate again.`,
		Example: `  berth namespace update team-a --memory 8g
  berth ns update team-a --tasks 0
  berth ns update team-a --block-severity critical`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			changeBlock := cmd.Flags().Changed("block-severity")
			if !q.changed(cmd) && !changeBlock {
				return usageErrorf("give at least one of --cpu, --memory, --tasks, --volumes, --block-severity")
			}
			if changeBlock {
				if err := checkSeverity(blockSeverity); err != nil {
					return err
				}
			}
			if err := q.apply(cmd, &berthv1.NamespaceQuota{}); err != nil {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				cur, err := c.GetNamespace(ctx, &berthv1.GetNamespaceRequest{Namespace: args[0]})
				if err != nil {
					return fmt.Errorf("update namespace %s: %w", args[0], err)
				}
				quota := &berthv1.NamespaceQuota{}
				if cq := cur.GetNamespace().GetQuota(); cq != nil {
					quota = cq
				}
				if err := q.apply(cmd, quota); err != nil {
					return err
				}
				req := &berthv1.UpdateNamespaceRequest{Name: args[0], Quota: quota}
				if changeBlock {
					req.BlockSeverity = &blockSeverity
				}
				ns, err := c.UpdateNamespace(ctx, req)
				if err != nil {
					return fmt.Errorf("update namespace %s: %w", args[0], err)
				}
				gate := ""
				if b := ns.GetBlockSeverity(); b != "" {
					gate = ", scan gate: " + b
				}
				fmt.Fprintf(cmd.OutOrStdout(), "namespace %s updated (quota: %s%s)\n", ns.GetName(), quotaText(ns.GetQuota()), gate)
				return nil
			})
		},
	}
	q.add(cmd)
	cmd.Flags().StringVar(&blockSeverity, "block-severity", "", "scan gate of the namespace: low, medium, high, critical, none (no gate), or \"\" (the cluster's)")
	return cmd
}

// namespaceRow is one namespace as `namespace ls` and `describe` show it.
type namespaceRow struct {
	Name   string                  `json:"name"`
	Labels map[string]string       `json:"labels,omitempty"`
	Quota  *berthv1.NamespaceQuota `json:"quota,omitempty"`
	Usage  *berthv1.NamespaceUsage `json:"usage"`
	// BlockSeverity is the namespace's own scan gate ("" for the
	// cluster's).
	BlockSeverity string `json:"blockSeverity,omitempty"`
}

func toNamespaceRow(s *berthv1.NamespaceSummary) namespaceRow {
	r := namespaceRow{Name: s.GetNamespace().GetName(), Labels: s.GetNamespace().GetLabels(), Usage: s.GetUsage(), BlockSeverity: s.GetNamespace().GetBlockSeverity()}
	if q := s.GetNamespace().GetQuota(); q != nil && (q.CpuMillis > 0 || q.MemoryBytes > 0 || q.Tasks > 0 || q.Volumes > 0) {
		r.Quota = q
	}
	if r.Usage == nil {
		r.Usage = &berthv1.NamespaceUsage{}
	}
	return r
}

// usedOf writes "used/quota", with "-" for no bound.
func usedOf(used, quota int64, format func(int64) string) string {
	q := "-"
	if quota > 0 {
		q = format(quota)
	}
	return cmp.Or(format(used), "0") + "/" + q
}

func countText(n int64) string { return strconv.FormatInt(n, 10) }

// quotaText says what a quota bounds: "tasks 50, cpu 2, memory 4GiB".
func quotaText(q *berthv1.NamespaceQuota) string {
	var parts []string
	if q.GetTasks() > 0 {
		parts = append(parts, "tasks "+countText(q.GetTasks()))
	}
	if q.GetCpuMillis() > 0 {
		parts = append(parts, "cpu "+coresColumn(q.GetCpuMillis()))
	}
	if q.GetMemoryBytes() > 0 {
		parts = append(parts, "memory "+bytesColumn(q.GetMemoryBytes()))
	}
	if q.GetVolumes() > 0 {
		parts = append(parts, "volumes "+countText(q.GetVolumes()))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func newNamespaceListCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the namespaces with their use and quota (used/quota, - for no bound)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListNamespaces(ctx, &berthv1.ListNamespacesRequest{})
				if err != nil {
					return fmt.Errorf("list namespaces: %w", err)
				}
				rows := []namespaceRow{}
				for _, s := range resp.GetNamespaces() {
					rows = append(rows, toNamespaceRow(s))
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tTASKS\tCPU\tMEMORY\tVOLUMES")
					for _, r := range rows {
						u, q := r.Usage, r.Quota
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name,
							usedOf(u.GetTasks(), q.GetTasks(), countText), usedOf(u.GetCpuMillis(), q.GetCpuMillis(), coresColumn),
							usedOf(u.GetMemoryBytes(), q.GetMemoryBytes(), bytesColumn), usedOf(u.GetVolumes(), q.GetVolumes(), countText))
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newNamespaceDescribeCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "describe NAME",
		Aliases: []string{"inspect"},
		Short:   "Show a namespace's use against its quota, resource by resource",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				s, err := c.GetNamespace(ctx, &berthv1.GetNamespaceRequest{Namespace: args[0]})
				if err != nil {
					return fmt.Errorf("describe namespace %s: %w", args[0], err)
				}
				r := toNamespaceRow(s)
				w := cmd.OutOrStdout()
				if *out == formatJSON || *out == formatYAML {
					return printList(w, *out, r, nil)
				}
				var labels []string
				for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
					labels = append(labels, k+"="+r.Labels[k])
				}
				kv := []string{"Name", r.Name, "Labels", strings.Join(labels, ", "),
					"Apps", countText(r.Usage.GetApps()), "Services", countText(r.Usage.GetServices())}
				if r.BlockSeverity != "" {
					kv = append(kv, "Scan gate", r.BlockSeverity)
				}
				fields(w, kv...)
				fmt.Fprintln(w)
				u, q := r.Usage, r.Quota
				return printList(w, formatTable, nil, func(tw io.Writer) {
					fmt.Fprintln(tw, "RESOURCE\tUSED\tQUOTA\tFREE")
					row := func(name string, used, quota int64, format func(int64) string) {
						qs, free := "none", "-"
						if quota > 0 {
							qs, free = format(quota), cmp.Or(format(max(quota-used, 0)), "0")
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, cmp.Or(format(used), "0"), qs, free)
					}
					row("tasks", u.GetTasks(), q.GetTasks(), countText)
					row("cpu", u.GetCpuMillis(), q.GetCpuMillis(), coresColumn)
					row("memory", u.GetMemoryBytes(), q.GetMemoryBytes(), bytesColumn)
					row("volumes", u.GetVolumes(), q.GetVolumes(), countText)
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newNamespaceRemoveCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove an empty namespace's record (refused while it holds anything)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				if _, err := c.RemoveNamespace(ctx, &berthv1.RemoveNamespaceRequest{Name: args[0]}); err != nil {
					return fmt.Errorf("remove namespace %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "namespace %s removed\n", args[0])
				return nil
			})
		},
	}
}
