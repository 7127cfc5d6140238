package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newNetworkCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "network",
		Aliases: []string{"networks", "net"},
		Short:   "Manage the networks that services join",
		Long: `Manage networks. A network spans every node: its services reach each
other by address and by name (SERVICE, SERVICE.APP, aliases), and services
of other networks cannot reach them.

An app's Compose file makes its own networks ("<app>_<key>", and
"<app>_default" for services that name none); they go with the app. The
networks made here are shared: apps join them with external: true.`,
		GroupID: groupApps,
	}
	cmd.AddCommand(newNetworkCreateCommand(o), newNetworkListCommand(o), newNetworkInspectCommand(o), newNetworkRemoveCommand(o))
	requireSubcommand(cmd)
	return cmd
}

func newNetworkCreateCommand(o *rootOptions) *cobra.Command {
	var (
		subnet   string
		internal bool
		labels   []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--subnet CIDR] [--internal] [--label KEY=VALUE]...",
		Short: "Make a shared network that apps join as external",
		Long: `Make a network named NAME that apps join by listing it in their Compose
file with external: true. Its subnet is the one given, or the next free /24
of the cluster's network range; no two networks' subnets overlap. An
internal network has no way out of the cluster.`,
		Example: `  berth network create shared
  berth network create backend --subnet 10.30.0.0/24 --internal --label team=core

  # compose.yaml of an app that joins it
  networks:
    backend:
      external: true`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lm, err := parseLabelFlags(labels)
			if err != nil {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				n, err := c.CreateNetwork(ctx, &berthv1.CreateNetworkRequest{
					Namespace: c.namespace, Name: args[0], Subnet: subnet, Internal: internal, Labels: lm,
				})
				if err != nil {
					return reportInvalid(cmd.ErrOrStderr(), fmt.Errorf("create network %s: %w", args[0], err))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "network %s created (subnet %s)\n", n.GetName(), n.GetSubnet())
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&subnet, "subnet", "", "IPv4 subnet, like 10.30.0.0/24 (default: the next free /24 of the network range)")
	cmd.Flags().BoolVar(&internal, "internal", false, "give the network no way out of the cluster")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE; repeat for several")
	return cmd
}

// parseLabelFlags reads KEY=VALUE flags.
func parseLabelFlags(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageErrorf("--label %q: write KEY=VALUE", f)
		}
		out[k] = v
	}
	return out, nil
}

// networkRow is one network as `berth network ls` and `inspect` show it.
type networkRow struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Subnet    string            `json:"subnet"`
	Internal  bool              `json:"internal"`
	App       string            `json:"app,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Services  []string          `json:"services"`
	Tasks     uint64            `json:"tasks"`
}

func toNetworkRow(s *berthv1.NetworkSummary) networkRow {
	n := s.GetNetwork()
	services := s.GetServices()
	if services == nil {
		services = []string{}
	}
	return networkRow{
		Namespace: n.GetNamespace(), Name: n.GetName(), Subnet: n.GetSubnet(), Internal: n.GetInternal(),
		App: n.GetApp(), Labels: n.GetLabels(), Services: services, Tasks: s.GetTasks(),
	}
}

// networkOwner says who made a network: its app, or "shared".
func (r networkRow) owner() string {
	if r.App == "" {
		return "shared"
	}
	return "app " + r.App
}

func newNetworkListCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the networks with the services and tasks on each",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListNetworks(ctx, &berthv1.ListNetworksRequest{Namespace: c.namespace, AllNamespaces: c.allNamespaces})
				if err != nil {
					return fmt.Errorf("list networks: %w", err)
				}
				rows := []networkRow{}
				for _, s := range resp.GetNetworks() {
					rows = append(rows, toNetworkRow(s))
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, c.nsHeader()+"NAME\tSUBNET\tINTERNAL\tOWNER\tSERVICES\tTASKS")
					for _, r := range rows {
						services := strings.Join(r.Services, ",")
						if services == "" {
							services = "-"
						}
						fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\t%d\n", c.nsCell(r.Namespace), r.Name, r.Subnet, yesNo(r.Internal), r.owner(), services, r.Tasks)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newNetworkInspectCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a network: its subnet, owner, services and tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				s, err := c.GetNetwork(ctx, &berthv1.GetNetworkRequest{Namespace: c.namespace, Name: args[0]})
				if err != nil {
					return fmt.Errorf("inspect network %s: %w", args[0], err)
				}
				r := toNetworkRow(s)
				w := cmd.OutOrStdout()
				if *out == formatJSON || *out == formatYAML {
					// One object, not a list of one.
					return printList(w, *out, r, nil)
				}
				fmt.Fprintf(w, "Name:       %s\n", r.Name)
				fmt.Fprintf(w, "Namespace:  %s\n", r.Namespace)
				fmt.Fprintf(w, "Subnet:     %s\n", r.Subnet)
				fmt.Fprintf(w, "Internal:   %s\n", yesNo(r.Internal))
				fmt.Fprintf(w, "Owner:      %s\n", r.owner())
				if len(r.Labels) > 0 {
					var pairs []string
					for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
						pairs = append(pairs, k+"="+r.Labels[k])
					}
					fmt.Fprintf(w, "Labels:     %s\n", strings.Join(pairs, ", "))
				}
				fmt.Fprintf(w, "Tasks:      %d\n", r.Tasks)
				if len(r.Services) == 0 {
					fmt.Fprintln(w, "Services:   none")
					return nil
				}
				fmt.Fprintln(w, "Services:")
				for _, svc := range r.Services {
					fmt.Fprintf(w, "  %s\n", svc)
				}
				return nil
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newNetworkRemoveCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a shared network no service uses (an app's own go with the app)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				if _, err := c.RemoveNetwork(ctx, &berthv1.RemoveNetworkRequest{Namespace: c.namespace, Name: args[0]}); err != nil {
					return fmt.Errorf("remove network %s: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "network %s removed\n", args[0])
				return nil
			})
		},
	}
}

// networkLines say what Apply did (or, in a dry run, would do) to the
// app's networks: "network shop_back created".
func networkLines(names []string, verb string, dryRun bool) []string {
	if dryRun {
		verb = "would be " + verb
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "network " + n + " " + verb
	}
	return out
}

// printNetworkDiff writes the networks applying would make ("+ network
// shop_back") and remove ("- network shop_old"): the file's own networks
// that are not stored yet, and the app's stored ones the file drops.
func (c *cluster) printNetworkDiff(ctx context.Context, w io.Writer, app string, networks []*berthv1.AppNetwork) error {
	resp, err := c.ListNetworks(ctx, &berthv1.ListNetworksRequest{Namespace: c.namespace})
	if status.Code(err) == codes.Unimplemented {
		return nil // a server from before networks
	}
	if err != nil {
		return fmt.Errorf("diff of %s: reading its networks: %w", app, err)
	}
	stored := map[string]bool{}
	for _, s := range resp.GetNetworks() {
		if s.GetNetwork().GetApp() == app {
			stored[s.GetNetwork().GetName()] = true
		}
	}
	var lines []string
	for _, n := range networks {
		if !n.GetExternal() && !stored[n.GetName()] {
			lines = append(lines, "+ network "+n.GetName())
		}
		delete(stored, n.GetName())
	}
	for _, name := range slices.Sorted(maps.Keys(stored)) {
		lines = append(lines, "- network "+name)
	}
	color := colorOutput(w)
	for _, line := range lines {
		if color {
			line = colorDiffLine(line)
		}
		fmt.Fprintln(w, line)
	}
	return nil
}
