package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
	"github.com/berthproject/berth/api/identity"
)

func newUserCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the people who hold a client certificate of the cluster",
		Long: `Manage users: people with a client certificate of their own, with a role
(viewer, deployer or admin) in some namespaces. "berth user create" makes the
key on this machine, has the cluster sign it, and writes a config file to
hand to that person; "berth user rm" revokes the certificate.`,
		GroupID: groupCluster,
	}
	cmd.AddCommand(newUserCreateCommand(o), newUserListCommand(o), newUserRemoveCommand(o))
	requireSubcommand(cmd)
	return cmd
}

func newUserCreateCommand(o *rootOptions) *cobra.Command {
	var (
		role       string
		namespaces []string
		output     string
		ttl        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME --role viewer|deployer|admin [--namespace NS]... [-o FILE]",
		Short: "Make a user and write a config file with its certificate",
		Long: `Make a user named NAME with a role in the namespaces given (none: every
namespace). The key is made here and never leaves this machine except in
the config file written to -o (default ./NAME.berth-config, never
overwritten): give that file to the person, who uses it with --config or
$BERTH_CONFIG, or adds it with "berth context import". The certificate is
valid for a year unless --ttl says otherwise.`,
		Example: `  berth user create alice --role deployer --namespace team-a -o alice.yaml
  berth user create bob --role viewer --namespace team-a --namespace team-b`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkRole(role, false); err != nil {
				return err
			}
			if ttl < 0 {
				return usageErrorf("--ttl %s is negative: give a positive duration such as 720h, or none for a year", ttl)
			}
			if output == "" {
				output = name + ".berth-config"
			}
			if _, err := os.Stat(output); err == nil {
				return fmt.Errorf("%s exists; give another file with -o, or remove it first", output)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				key, csr, err := identity.NewKeyAndCSR(name)
				if err != nil {
					return err
				}
				req := &berthv1.CreateUserRequest{Name: name, Role: role, Namespaces: namespaces, Csr: csr}
				if ttl > 0 {
					req.Ttl = durationpb.New(ttl)
				}
				resp, err := c.CreateUser(ctx, req)
				if err != nil {
					return fmt.Errorf("create user %q: %w", name, err)
				}
				userCfg := &clientconfig.Config{
					Server: c.cfg.Server, ServerName: c.cfg.ServerName, CA: string(resp.GetCaCertificate()),
					Certificate: string(resp.GetCertificate()), Key: string(key),
				}
				if len(namespaces) == 1 {
					userCfg.Namespace = namespaces[0]
				}
				if err := clientconfig.Save(output, userCfg); err != nil {
					return fmt.Errorf("user %q was made, but its config could not be written (remove it with berth user rm %s and try again): %w", name, name, err)
				}
				u := resp.GetUser()
				fmt.Fprintf(cmd.OutOrStdout(), "User %q, a %s in %s, made; certificate valid until %s.\nIts config is in %s: give it to %s, who uses it with --config %s.\n",
					u.GetName(), u.GetRole(), namespacesText(u.GetNamespaces()), u.GetExpiresAt().AsTime().Local().Format(time.DateOnly), output, name, output)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, deployer or admin (required)")
	cmd.Flags().StringArrayVar(&namespaces, "namespace", nil, "a namespace the user may act in; repeat for more (default: every namespace)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "where to write the user's config file (default ./NAME.berth-config)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the certificate is valid (default a year)")
	return cmd
}

// userRow is one user as `berth user ls` shows it.
type userRow struct {
	Name       string   `json:"name"`
	Role       string   `json:"role"`
	Namespaces []string `json:"namespaces"`
	Serial     string   `json:"serial"`
	Created    string   `json:"created"`
	Expires    string   `json:"expires"`
	CreatedBy  string   `json:"createdBy,omitempty"`
}

func newUserListCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the users",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListUsers(ctx, &berthv1.ListUsersRequest{})
				if err != nil {
					return fmt.Errorf("list users: %w", err)
				}
				rows := []userRow{}
				for _, u := range resp.GetUsers() {
					rows = append(rows, userRow{Name: u.GetName(), Role: u.GetRole(), Namespaces: u.GetNamespaces(), Serial: u.GetSerial(),
						Created: stamp(u.GetCreatedAt()), Expires: stamp(u.GetExpiresAt()), CreatedBy: u.GetCreatedBy()})
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tROLE\tNAMESPACES\tCREATED\tEXPIRES")
					for _, r := range rows {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Role, namespacesColumn(r.Namespaces), r.Created, r.Expires)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newUserRemoveCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove a user and revoke its certificate",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				if _, err := c.RemoveUser(ctx, &berthv1.RemoveUserRequest{Name: args[0]}); err != nil {
					return fmt.Errorf("remove user %q: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "User %s removed; its certificate is revoked\n", args[0])
				return nil
			})
		},
	}
}

// whoamiRow is what `berth whoami` shows.
type whoamiRow struct {
	Principal  string   `json:"principal"`
	Role       string   `json:"role"`
	Namespaces []string `json:"namespaces"`
	Methods    []string `json:"methods"`
}

func newWhoAmICommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "whoami",
		Short:   "Show who the cluster takes you for, and what you may call",
		Args:    cobra.NoArgs,
		GroupID: groupCluster,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.WhoAmI(ctx, &berthv1.WhoAmIRequest{})
				if err != nil {
					return fmt.Errorf("whoami: %w", err)
				}
				row := whoamiRow{Principal: resp.GetPrincipal(), Role: resp.GetRole(), Namespaces: resp.GetNamespaces(), Methods: resp.GetMethods()}
				if *out == formatJSON || *out == formatYAML {
					return printList(cmd.OutOrStdout(), *out, row, nil)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "Principal:   %s\nRole:        %s\nNamespaces:  %s\nMay call:    %s\n",
					row.Principal, row.Role, namespacesColumn(row.Namespaces), strings.Join(row.Methods, ", "))
				return nil
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}
