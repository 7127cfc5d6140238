// Package cli holds the berth command line: the root command with its global
// flags and the client commands (apply, ps, get, logs, ...) that talk to the
// cluster API.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
)

// defaultNamespace is used when neither -n nor the config names one.
const defaultNamespace = "default"

// rootOptions are the global flags, shared by every client command.
type rootOptions struct {
	configPath string
	context    string
	namespace  string
	// token is an API token to authenticate with instead of the config's
	// client certificate (--token, else $BERTH_TOKEN).
	token string
	// allNamespaces is -A of the listing commands.
	allNamespaces bool
	// now is the clock of the "12s ago" columns; tests fix it.
	now func() time.Time
}

// NewRoot returns the berth command with its global flags (--config,
// -n/--namespace) and every client command. extra commands (the server,
// agent and dev roles) are added beside them; they can read the config path
// with ConfigPath.
//
// Errors are not printed by the command: run it with Execute, which prints
// them once, cleanly.
func NewRoot(extra ...*cobra.Command) *cobra.Command {
	return newRoot(&rootOptions{now: time.Now}, extra...)
}

func newRoot(o *rootOptions, extra ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Run and manage applications on a Berth cluster",
		Long: `Berth runs Compose applications on a cluster of machines.

Start a one-machine cluster with "berth dev", describe your application in a
Compose file, and run it with "berth apply -f compose.yaml". The client
commands find the cluster through the config file that "berth dev" and
"berth server" write (~/.berth/config, or $BERTH_CONFIG); "berth context"
adds other clusters to it and switches between them.

Exit status: 0 when the command did what was asked, 1 when it failed (an
error from the cluster, a service that did not converge), 2 for a usage
error (an unknown command or flag, or arguments of the wrong shape);
"berth exec" exits with the code of the command it ran.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable so that an unknown command is a usage error (exit 2)
		// rather than cobra's own.
		Args: unknownCommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.PersistentFlags().StringVar(&o.configPath, "config", clientconfig.DefaultPath(), "path of the Berth config file (server address and credentials)")
	root.PersistentFlags().StringVar(&o.context, "context", "", "context (cluster) of the config file to use, instead of its current one (or $"+clientconfig.EnvContext+")")
	root.PersistentFlags().StringVarP(&o.namespace, "namespace", "n", "", `namespace to work in (default: the config's namespace, else "default")`)
	root.PersistentFlags().StringVar(&o.token, "token", "", "API token to authenticate with instead of the config's client certificate (or $"+EnvToken+"); the config still gives the server and its CA")
	root.AddGroup(
		&cobra.Group{ID: groupApps, Title: "Application commands:"},
		&cobra.Group{ID: groupCluster, Title: "Cluster commands:"},
	)
	for _, c := range []*cobra.Command{
		newApplyCommand(o),
		newBuildCommand(o),
		newTriggerCommand(o),
		newPsCommand(o),
		newGetCommand(o),
		newLogsCommand(o),
		newExecCommand(o),
		newCpCommand(o),
		newTopCommand(o),
		newStatsCommand(o),
		newEventsCommand(o),
		newAuditCommand(o),
		newDescribeCommand(o),
		newDeleteCommand(o),
		newScaleCommand(o),
		newRolloutCommand(o),
		newImageCommand(o),
		newSystemCommand(o),
		newSignCommand(o),
		newKeyCommand(o),
		newTrustCommand(o),
		newNodeCommand(o),
		newRebalanceCommand(o),
		newClusterCommand(o),
		newNamespaceCommand(o),
		newJoinTokenCommand(o),
		newCACommand(o),
		newTokenCommand(o),
		newUserCommand(o),
		newWhoAmICommand(o),
		newNetworkCommand(o),
		newVolumeCommand(o),
		newSecretCommand(o),
		newConfigCommand(o),
		newLoginCommand(o),
		newLogoutCommand(o),
		newRegistryCommand(o),
		newPullCommand(o),
		newPushCommand(o),
		newScanCommand(o),
		newVulnDBCommand(o),
		newVersionCommand(o),
		newSnapshotCommand(o),
		newContextCommand(o),
		newCompletionCommand(),
	} {
		root.AddCommand(c)
	}
	root.AddCommand(extra...)
	root.CompletionOptions.DisableDefaultCmd = true
	registerCompletions(root, o)
	markUsageErrors(root)
	return root
}

const (
	groupApps    = "apps"
	groupCluster = "cluster"
)

// ConfigPath returns the value of the --config flag as seen by cmd, a
// command under the root made by NewRoot.
func ConfigPath(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("config"); f != nil {
		return f.Value.String()
	}
	return clientconfig.DefaultPath()
}

// Execute runs root with ctx (cancel it on SIGINT/SIGTERM to stop streaming
// commands such as "logs -f"), prints any error to root's error output as
// "berth: ..." and returns the process exit code.
func Execute(ctx context.Context, root *cobra.Command) int {
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		// The whole chain: a command may wrap a usage error with
		// where it was found.
		fmt.Fprintf(root.ErrOrStderr(), "berth: %s\nSee '%s --help'.\n", err, cmd.CommandPath())
		return exitUsage
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code // berth exec: the command's own exit code
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(root.ErrOrStderr(), "berth: %s\n", userMessage(err))
	}
	return exitFailure
}

// errReported is returned by commands that already printed why they failed
// and only need a non-zero exit.
var errReported = errors.New("failure already reported")

// requireSubcommand makes a command that only groups subcommands fail on an
// unknown one, instead of printing its help and succeeding.
func requireSubcommand(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return usageErrorf("unknown command %q for %q: use one of %s", args[0], cmd.CommandPath(), strings.Join(names, ", "))
	}
}

// cluster is a connection to the cluster API for one command run.
type cluster struct {
	berthv1.ClusterServiceClient
	conn      *grpc.ClientConn
	cfg       *clientconfig.Config
	namespace string
	// allNamespaces is -A: listings answer every namespace the caller
	// may see, with a NAMESPACE column.
	allNamespaces bool
}

// connect loads the config and dials the server. The namespace is -n when
// given, else the config's, else "default".
func (o *rootOptions) connect(cmd *cobra.Command) (*cluster, error) {
	cfg, err := o.loadConfig()
	if err != nil {
		return nil, err
	}
	skew := &serverVersionCheck{}
	conn, err := cfg.Dial(cmd.Context(),
		grpc.WithChainUnaryInterceptor(unaryErrors(cfg.Server), skew.unary()),
		grpc.WithChainStreamInterceptor(streamErrors(cfg.Server), skew.stream()),
	)
	if err != nil {
		return nil, err
	}
	ns := o.namespace
	if !cmd.Flags().Changed("namespace") {
		ns = cfg.Namespace
	}
	if ns == "" {
		ns = defaultNamespace
	}
	return &cluster{
		ClusterServiceClient: berthv1.NewClusterServiceClient(conn),
		conn:                 conn,
		cfg:                  cfg,
		namespace:            ns,
		allNamespaces:        o.allNamespaces,
	}, nil
}

// addAllNamespacesFlag adds -A/--all-namespaces to a listing command.
func addAllNamespacesFlag(cmd *cobra.Command, o *rootOptions) {
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list every namespace you may see (with a NAMESPACE column) instead of one")
}

// nsHeader is the NAMESPACE column's header with -A, else nothing.
func (c *cluster) nsHeader() string {
	if c.allNamespaces {
		return "NAMESPACE\t"
	}
	return ""
}

// nsCell is a row's NAMESPACE cell with -A, else nothing.
func (c *cluster) nsCell(ns string) string {
	if c.allNamespaces {
		return ns + "\t"
	}
	return ""
}

// EnvToken is the environment variable that gives an API token, as
// --token does.
const EnvToken = "BERTH_TOKEN"

// loadConfig loads the context commands use, with the token of --token or
// $BERTH_TOKEN in place of its credentials when one is given: a token
// decides alone.
func (o *rootOptions) loadConfig() (*clientconfig.Config, error) {
	cfg, err := clientconfig.LoadContext(o.configPath, o.contextName())
	if err != nil {
		return nil, err
	}
	token := o.token
	if token == "" {
		token = os.Getenv(EnvToken)
	}
	if token != "" {
		cfg.Token, cfg.Certificate, cfg.Key = strings.TrimSpace(token), "", ""
	}
	return cfg, nil
}

// contextName is the context commands use: --context, else
// $BERTH_CONTEXT, else "" for the config file's current one.
func (o *rootOptions) contextName() string {
	if o.context != "" {
		return o.context
	}
	return os.Getenv(clientconfig.EnvContext)
}

// withCluster connects to the cluster, runs fn with the command's context
// and the connection, and closes the connection when fn returns. Commands
// check their arguments and flags before, so that a mistake in them is
// reported without a server.
func (o *rootOptions) withCluster(cmd *cobra.Command, fn func(ctx context.Context, c *cluster) error) error {
	c, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(cmd.Context(), c)
}

// Close closes the connection.
func (c *cluster) Close() error { return c.conn.Close() }

// nodeNames maps node IDs to names, for commands that show where tasks run.
func (c *cluster) nodeNames(ctx context.Context) (map[string]string, error) {
	resp, err := c.ListNodes(ctx, &berthv1.ListNodesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	names := make(map[string]string, len(resp.GetNodes()))
	for _, n := range resp.GetNodes() {
		names[n.GetMeta().GetId()] = n.GetName()
	}
	return names, nil
}

// nodeFilter resolves a --node flag to the node ID a request filters by:
// none when the flag is empty.
func (c *cluster) nodeFilter(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	return c.resolveNode(ctx, ref)
}

// resolveNode turns a node name or ID (or unique ID prefix) into its ID.
func (c *cluster) resolveNode(ctx context.Context, ref string) (string, error) {
	resp, err := c.ListNodes(ctx, &berthv1.ListNodesRequest{})
	if err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	var byPrefix []string
	for _, n := range resp.GetNodes() {
		id := n.GetMeta().GetId()
		if n.GetName() == ref || id == ref {
			return id, nil
		}
		if len(ref) >= 3 && len(id) > len(ref) && id[:len(ref)] == ref {
			byPrefix = append(byPrefix, id)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
		return "", fmt.Errorf("no node named %q; see `berth node ls`", ref)
	default:
		return "", fmt.Errorf("node ID prefix %q matches %d nodes; give more of the ID or the node name", ref, len(byPrefix))
	}
}
