package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// warningHeader is the response header in which the server sends
// warnings about a request that succeeded.
const warningHeader = "berth-warning"

// printWarnings prints the warnings the server sent in header.
func printWarnings(w io.Writer, header metadata.MD) {
	for _, msg := range header.Get(warningHeader) {
		fmt.Fprintf(w, "warning: %s\n", msg)
	}
}

func newLoginCommand(o *rootOptions) *cobra.Command {
	var (
		username      string
		passwordStdin bool
		fromDocker    bool
	)
	cmd := &cobra.Command{
		Use:   "login [REGISTRY] [-u USER] [--password-stdin]",
		Short: "Store a registry credential that the nodes pull and push with",
		Long: `Store the credential of a registry in the cluster. The server checks it
against the registry first (a refused credential is not stored; one the
server cannot check, because the registry does not answer it, is stored
with a warning). The password is kept sealed under a key of the cluster
CA, and sent to a node only with the images of that registry.

REGISTRY is host[:port]; without it, Docker Hub (docker.io). The password
is asked for without echo, or read from standard input with
--password-stdin.

--from-docker imports what "docker login" stored instead: every registry of
docker's config.json ($DOCKER_CONFIG, else ~/.docker), or the REGISTRY
names given, with the passwords in its auths or got from its credential
helpers (credHelpers, credsStore: docker-credential-NAME on $PATH). It
prints the registries it imported, never a password. A registry served over plain HTTP must be listed with
"berth cluster settings --insecure-registry HOST:PORT" first.`,
		Example: `  berth login registry.example.com -u ci
  echo "$TOKEN" | berth login registry.example.com:5000 -u ci --password-stdin

  # What docker login stored, for every registry or some
  berth login --from-docker
  berth login --from-docker ghcr.io registry.example.com`,
		Args: func(cmd *cobra.Command, args []string) error {
			if fromDocker {
				return nil
			}
			return cobra.MaximumNArgs(1)(cmd, args)
		},
		GroupID: groupCluster,
		RunE: func(cmd *cobra.Command, args []string) error {
			if fromDocker {
				if username != "" || passwordStdin {
					return usageErrorf("login --from-docker reads the username and password from docker's config: leave out -u and --password-stdin")
				}
				return o.loginFromDocker(cmd, args)
			}
			registry := ""
			if len(args) == 1 {
				registry = args[0]
			}
			shown := registry
			if shown == "" {
				shown = "docker.io"
			}
			in := cmd.InOrStdin()
			tty := terminalFd(in)
			if username == "" {
				if passwordStdin || tty < 0 {
					return usageErrorf("login: give the username with -u (and the password on standard input with --password-stdin)")
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Username for %s: ", shown)
				line, err := bufio.NewReader(in).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("login: reading the username: %w", err)
				}
				username = strings.TrimSpace(line)
			}
			password, err := readPassword(cmd, in, tty, passwordStdin, shown)
			if err != nil {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var header metadata.MD
				if _, err := c.Login(ctx, &berthv1.LoginRequest{Registry: registry, Username: username, Password: password}, grpc.Header(&header)); err != nil {
					return fmt.Errorf("login: %w", err)
				}
				printWarnings(cmd.ErrOrStderr(), header)
				fmt.Fprintf(cmd.OutOrStdout(), "Login stored for %s as %s\n", shown, username)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "the registry username")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().BoolVar(&fromDocker, "from-docker", false, "import the credentials docker login stored (config.json and its credential helpers)")
	return cmd
}

// readPassword reads the password: all of standard input with
// --password-stdin (without its final newline), else from the terminal
// with echo off.
func readPassword(cmd *cobra.Command, in io.Reader, tty int, fromStdin bool, registry string) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(in)
		if err != nil {
			return "", fmt.Errorf("login: reading the password from standard input: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if tty < 0 {
		return "", usageErrorf("login: standard input is not a terminal; pipe the password with --password-stdin")
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Password for %s: ", registry)
	defer fmt.Fprintln(cmd.ErrOrStderr())
	pw, err := term.ReadPassword(tty)
	if err != nil {
		return "", fmt.Errorf("login: reading the password: %w", err)
	}
	return strings.TrimRight(string(pw), "\r\n"), nil
}

func newLogoutCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "logout [REGISTRY]",
		Short:   "Remove a registry credential from the cluster",
		Example: `  berth logout registry.example.com`,
		Args:    cobra.MaximumNArgs(1),
		GroupID: groupCluster,
		RunE: func(cmd *cobra.Command, args []string) error {
			registry := ""
			if len(args) == 1 {
				registry = args[0]
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				if _, err := c.Logout(ctx, &berthv1.LogoutRequest{Registry: registry}); err != nil {
					return fmt.Errorf("logout: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Login removed for %s\n", registryName(registry))
				return nil
			})
		},
	}
}

func registryName(r string) string {
	if r == "" {
		return "docker.io"
	}
	return r
}

// registryRow is one stored credential as "registry ls" shows it.
type registryRow struct {
	Registry string `json:"registry"`
	Username string `json:"username"`
	Updated  string `json:"updated"`
}

func newRegistryCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "registry",
		Short:   "List the registries the cluster holds credentials for",
		GroupID: groupCluster,
	}
	var out *outputFormat
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the stored registry credentials (never their passwords)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListRegistries(ctx, &berthv1.ListRegistriesRequest{})
				if err != nil {
					return fmt.Errorf("list registries: %w", err)
				}
				rows := []registryRow{}
				for _, r := range resp.GetRegistries() {
					rows = append(rows, registryRow{Registry: r.GetRegistry(), Username: r.GetUsername(), Updated: stamp(r.GetMeta().GetUpdatedAt())})
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "REGISTRY\tUSERNAME\tUPDATED")
					for _, r := range rows {
						fmt.Fprintf(w, "%s\t%s\t%s\n", r.Registry, r.Username, r.Updated)
					}
				})
			})
		},
	}
	out = addOutputFlag(ls)
	cmd.AddCommand(ls)
	requireSubcommand(cmd)
	return cmd
}

func stamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return rfc3339(t)
}
