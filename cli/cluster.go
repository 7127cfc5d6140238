package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newClusterCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Short:   "Show and change cluster-wide settings",
		GroupID: groupCluster,
	}
	cmd.AddCommand(newClusterSettingsCommand(o))
	requireSubcommand(cmd)
	return cmd
}

// settingsView is the cluster settings as "cluster settings" shows them.
type settingsView struct {
	Strategy      string `json:"strategy"`
	AutoRebalance bool   `json:"autoRebalance"`
}

// settingsOutput adds the insecure registries, left out while empty.
type settingsOutput struct {
	settingsView
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

// parseStrategy reads a --strategy word.
func parseStrategy(s string) (berthv1.SchedulingStrategy, error) {
	switch s {
	case "spread":
		return berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD, nil
	case "binpack":
		return berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK, nil
	}
	return 0, fmt.Errorf("unknown strategy %q: use spread or binpack", s)
}

func newClusterSettingsCommand(o *rootOptions) *cobra.Command {
	var (
		strategy      string
		autoRebalance bool
		insecure      []string
		out           *outputFormat
	)
	cmd := &cobra.Command{
		Use:   "settings [--strategy spread|binpack] [--auto-rebalance=true|false]",
		Short: "Show or change the cluster's scheduling strategy and auto-rebalance",
		Long: `Without flags, show the cluster settings. With flags, change the ones given
and show the result.

--strategy is how the scheduler ranks the nodes a task fits on: spread
puts each task where its service has the fewest tasks (the default);
binpack puts it on the fullest node it fits on, leaving whole nodes free.
A service can choose its own with x-berth.strategy in its Compose file.

--auto-rebalance moves tasks toward an even spread whenever a node joins
or comes back, as "berth rebalance" does on request.

--insecure-registry lists the registries (host:port) the nodes reach over
plain HTTP; repeat it for several. The list given replaces the one stored;
--insecure-registry= clears it.`,
		Example: `  berth cluster settings
  berth cluster settings --strategy binpack
  berth cluster settings --auto-rebalance=true -o json
  berth cluster settings --insecure-registry 127.0.0.1:5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			changeStrategy, changeRebalance := cmd.Flags().Changed("strategy"), cmd.Flags().Changed("auto-rebalance")
			changeInsecure := cmd.Flags().Changed("insecure-registry")
			var want berthv1.SchedulingStrategy
			if changeStrategy {
				var err error
				if want, err = parseStrategy(strategy); err != nil {
					return err
				}
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				s, err := c.GetSettings(ctx, &berthv1.GetSettingsRequest{})
				if err != nil {
					return fmt.Errorf("get cluster settings: %w", err)
				}
				if changeStrategy || changeRebalance || changeInsecure {
					if changeStrategy {
						s.Strategy = want
					}
					if changeRebalance {
						s.AutoRebalance = autoRebalance
					}
					if changeInsecure {
						s.InsecureRegistries = nonEmpty(insecure)
					}
					if s, err = c.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: s}); err != nil {
						return fmt.Errorf("update cluster settings: %w", err)
					}
				}
				v := settingsOutput{
					settingsView: settingsView{
						Strategy:      cmp.Or(enumWord(s.GetStrategy().String(), "SCHEDULING_STRATEGY_"), "spread"),
						AutoRebalance: s.GetAutoRebalance(),
					},
					InsecureRegistries: s.GetInsecureRegistries(),
				}
				return printList(cmd.OutOrStdout(), *out, v, func(w io.Writer) {
					kv := []string{"Strategy", v.Strategy, "Auto-rebalance", strconv.FormatBool(v.AutoRebalance)}
					if len(v.InsecureRegistries) > 0 {
						kv = append(kv, "Insecure registries", strings.Join(v.InsecureRegistries, ", "))
					}
					fields(w, kv...)
				})
			})
		},
	}
	cmd.Flags().StringVar(&strategy, "strategy", "", "default scheduling strategy: spread or binpack")
	cmd.Flags().BoolVar(&autoRebalance, "auto-rebalance", false, "rebalance every service when a node joins or comes back")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "a registry (host:port) reached over plain HTTP; repeat for several, empty to clear")
	out = addOutputFlag(cmd)
	return cmd
}

// nonEmpty drops the empty values of a repeated flag ("--flag=" clears).
func nonEmpty(values []string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
