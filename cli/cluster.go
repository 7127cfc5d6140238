package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
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
	// MaxReplicas is the cap in force (the default when none is set).
	MaxReplicas uint64 `json:"maxReplicas"`
}

// settingsOutput adds the insecure registries and the host access
// settings, left out while empty or off.
type settingsOutput struct {
	settingsView
	InsecureRegistries  []string `json:"insecureRegistries,omitempty"`
	AllowedBindMounts   []string `json:"allowedBindMounts,omitempty"`
	AllowPrivileged     bool     `json:"allowPrivileged,omitempty"`
	AllowHostNamespaces bool     `json:"allowHostNamespaces,omitempty"`
	BlockSeverity       string   `json:"blockSeverity,omitempty"`
	// LogMaxSize and LogMaxFile are the default log limits set; 0 is
	// Berth's (10 MB, 3 files).
	LogMaxSize int64  `json:"logMaxSize,omitempty"`
	LogMaxFile uint32 `json:"logMaxFile,omitempty"`
}

// parseStrategy reads a --strategy word.
func parseStrategy(s string) (berthv1.SchedulingStrategy, error) {
	switch s {
	case "spread":
		return berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD, nil
	case "binpack":
		return berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK, nil
	}
	return 0, usageErrorf("unknown strategy %q: use spread or binpack", s)
}

func newClusterSettingsCommand(o *rootOptions) *cobra.Command {
	var (
		strategy      string
		autoRebalance bool
		maxReplicas   uint64
		insecure      []string
		blockSeverity string
		host          hostAccessFlags
		logs          logLimitFlags
		out           *outputFormat
	)
	cmd := &cobra.Command{
		Use:   "settings [--strategy spread|binpack] [--auto-rebalance=true|false] [--allow-bind-mount PATH]... [--allow-privileged] [--allow-host-namespaces] [--max-replicas N] [--block-severity low|medium|high|critical|none] [--log-max-size SIZE] [--log-max-file N]",
		Short: "Show or change the cluster's scheduling, registries, log limits and what services may do to their hosts",
		Long: `Without flags, show the cluster settings. With flags, change the ones given
and show the result.

--strategy is how the scheduler ranks the nodes a task fits on: spread
puts each task where its service has the fewest tasks (the default);
binpack puts it on the fullest node it fits on, leaving whole nodes free.
A service can choose its own with x-berth.strategy in its Compose file.

--auto-rebalance moves tasks toward an even spread whenever a node joins
or comes back, as "berth rebalance" does on request.

--max-replicas caps the replicas of one service (apply and scale ask for
no more); 0 means the default of 10,000, and the cap can be at most
1,000,000.

--insecure-registry lists the registries (host:port) the nodes reach over
plain HTTP; repeat it for several. The list given replaces the one stored;
--insecure-registry= clears it.

By default a service may not reach into its nodes. --allow-bind-mount PATH
lets services bind-mount host paths at or under PATH (an absolute path);
repeat it for several. Each one given is added to those stored;
--clear-bind-mounts removes every one first (alone, it allows none again).
--allow-privileged lets services be privileged, add every capability
(cap_add: ALL), use host devices, or turn off seccomp or
no_new_privileges. --allow-host-namespaces lets them share the host's pid,
ipc or network namespace. Set either =false to forbid it again; services
already running keep running.

--block-severity is the scan gate: an apply whose images have
vulnerability findings at or above it is refused (images not scanned yet
are scanned during the apply); none lifts it. A namespace can set its own
(berth namespace update N --block-severity ...), and a service can accept
named findings with x-berth: {allow-vulnerabilities: [CVE-...]}.

--log-max-size and --log-max-file bound the log files of the containers
of services whose Compose file sets no logging: options: a container's
file is rotated past max-size (10m, 500k; decimal units, like Docker) and
max-file files are kept. 0 restores Berth's defaults, 10m and 3. They
apply to containers created from then on.`,
		Example: `  berth cluster settings
  berth cluster settings --strategy binpack
  berth cluster settings --auto-rebalance=true -o json
  berth cluster settings --insecure-registry 127.0.0.1:5000
  berth cluster settings --allow-bind-mount /srv/data --allow-bind-mount /var/log
  berth cluster settings --clear-bind-mounts
  berth cluster settings --allow-privileged=false
  berth cluster settings --max-replicas 500
  berth cluster settings --block-severity high
  berth cluster settings --log-max-size 20m --log-max-file 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			changeStrategy, changeRebalance := cmd.Flags().Changed("strategy"), cmd.Flags().Changed("auto-rebalance")
			changeInsecure := cmd.Flags().Changed("insecure-registry")
			changeMax := cmd.Flags().Changed("max-replicas")
			changeBlock := cmd.Flags().Changed("block-severity")
			if changeBlock {
				if err := checkSeverity(blockSeverity); err != nil {
					return err
				}
			}
			if changeMax && maxReplicas > validation.MaxReplicasLimit {
				return usageErrorf("--max-replicas %d is over the highest cap of %d", maxReplicas, validation.MaxReplicasLimit)
			}
			if err := host.check(); err != nil {
				return err
			}
			if err := logs.check(cmd); err != nil {
				return err
			}
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
				if changeStrategy || changeRebalance || changeInsecure || changeMax || changeBlock || host.changed(cmd) || logs.changed(cmd) {
					if changeStrategy {
						s.Strategy = want
					}
					if changeRebalance {
						s.AutoRebalance = autoRebalance
					}
					if changeInsecure {
						s.InsecureRegistries = nonEmpty(insecure)
					}
					if changeMax {
						s.MaxReplicas = maxReplicas
					}
					if changeBlock {
						s.BlockSeverity = blockSeverity
					}
					host.apply(cmd, s)
					logs.apply(cmd, s)
					if s, err = c.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: s}); err != nil {
						return fmt.Errorf("update cluster settings: %w", err)
					}
				}
				v := settingsOutput{
					settingsView: settingsView{
						Strategy:      cmp.Or(enumWord(s.GetStrategy().String(), "SCHEDULING_STRATEGY_"), "spread"),
						AutoRebalance: s.GetAutoRebalance(),
						MaxReplicas:   validation.MaxReplicas(s),
					},
					InsecureRegistries:  s.GetInsecureRegistries(),
					AllowedBindMounts:   s.GetAllowedBindMounts(),
					AllowPrivileged:     s.GetAllowPrivileged(),
					AllowHostNamespaces: s.GetAllowHostNamespaces(),
					BlockSeverity:       s.GetBlockSeverity(),
					LogMaxSize:          s.GetLogging().GetMaxSize(),
					LogMaxFile:          s.GetLogging().GetMaxFile(),
				}
				return printList(cmd.OutOrStdout(), *out, v, func(w io.Writer) {
					kv := []string{"Strategy", v.Strategy, "Auto-rebalance", strconv.FormatBool(v.AutoRebalance),
						"Max replicas", strconv.FormatUint(v.MaxReplicas, 10)}
					if len(v.InsecureRegistries) > 0 {
						kv = append(kv, "Insecure registries", strings.Join(v.InsecureRegistries, ", "))
					}
					if len(v.AllowedBindMounts) > 0 {
						kv = append(kv, "Allowed bind mounts", strings.Join(v.AllowedBindMounts, ", "))
					}
					if v.AllowPrivileged {
						kv = append(kv, "Allow privileged", "true")
					}
					if v.AllowHostNamespaces {
						kv = append(kv, "Allow host namespaces", "true")
					}
					if v.BlockSeverity != "" {
						kv = append(kv, "Block severity", v.BlockSeverity)
					}
					if v.LogMaxSize != 0 || v.LogMaxFile != 0 {
						size, files := logLimitsInForce(s)
						kv = append(kv, "Log max size", logSizeWords(size), "Log max file", strconv.FormatUint(uint64(files), 10))
					}
					fields(w, kv...)
				})
			})
		},
	}
	cmd.Flags().StringVar(&strategy, "strategy", "", "default scheduling strategy: spread or binpack")
	cmd.Flags().BoolVar(&autoRebalance, "auto-rebalance", false, "rebalance every service when a node joins or comes back")
	cmd.Flags().Uint64Var(&maxReplicas, "max-replicas", 0, "cap on one service's replicas; 0 means the default (10,000)")
	cmd.Flags().StringVar(&blockSeverity, "block-severity", "", "scan gate: refuse applies of images with findings at or above low, medium, high or critical; none lifts it")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "a registry (host:port) reached over plain HTTP; repeat for several, empty to clear")
	host.add(cmd)
	logs.add(cmd)
	out = addOutputFlag(cmd)
	return cmd
}

// hostAccessFlags are the settings flags of what services may do to their
// nodes.
type hostAccessFlags struct {
	bindMounts      []string
	clearBindMounts bool
	privileged      bool
	hostNamespaces  bool
}

func (h *hostAccessFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&h.bindMounts, "allow-bind-mount", nil, "let services bind-mount host paths at or under this absolute path; repeat for several (added to those stored)")
	cmd.Flags().BoolVar(&h.clearBindMounts, "clear-bind-mounts", false, "forget every allowed bind mount path first")
	cmd.Flags().BoolVar(&h.privileged, "allow-privileged", false, "let services be privileged, add all capabilities, use host devices, or turn off seccomp or no_new_privileges")
	cmd.Flags().BoolVar(&h.hostNamespaces, "allow-host-namespaces", false, "let services share the host's pid, ipc or network namespace")
}

// check refuses bind mount paths the server would refuse, before any
// call.
func (h *hostAccessFlags) check() error {
	for _, p := range h.bindMounts {
		if !strings.HasPrefix(p, "/") {
			return usageErrorf("--allow-bind-mount %q: give an absolute host path, like /srv/data (--clear-bind-mounts forgets the stored ones)", p)
		}
	}
	return nil
}

func (h *hostAccessFlags) changed(cmd *cobra.Command) bool {
	f := cmd.Flags()
	return f.Changed("allow-bind-mount") || f.Changed("clear-bind-mounts") || f.Changed("allow-privileged") || f.Changed("allow-host-namespaces")
}

// apply changes s by the flags given.
func (h *hostAccessFlags) apply(cmd *cobra.Command, s *berthv1.ClusterSettings) {
	f := cmd.Flags()
	if h.clearBindMounts {
		s.AllowedBindMounts = nil
	}
	for _, p := range h.bindMounts {
		if !slices.Contains(s.AllowedBindMounts, p) {
			s.AllowedBindMounts = append(s.AllowedBindMounts, p)
		}
	}
	if f.Changed("allow-privileged") {
		s.AllowPrivileged = h.privileged
	}
	if f.Changed("allow-host-namespaces") {
		s.AllowHostNamespaces = h.hostNamespaces
	}
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

// checkSeverity checks a --block-severity value before any call, so a typo
// is a usage error; the server checks it again.
func checkSeverity(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "low", "medium", "high", "critical", "none":
		return nil
	}
	return usageErrorf("--block-severity %q: use low, medium, high, critical or none", v)
}
