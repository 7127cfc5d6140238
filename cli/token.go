package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newTokenCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the API tokens that authenticate scripts, tools and CI",
		Long: `Manage API tokens. A token lets a script, a tool or a person call the
cluster without a client certificate: the CLI with --token (or $BERTH_TOKEN,
or a context that holds one), the HTTP/JSON API (berth server --http-listen)
with the header "Authorization: Bearer <token>".

A token has a role (viewer, deployer or admin) in some namespaces, and can
never do more than whoever made it: by default it gets its maker's own role
and namespaces. Give it a --ttl when it is for a while only, and revoke it
when it is no longer needed; revoking ends its open streams (logs -f, events
-f, exec) at once. Admins see and revoke every token, others the ones they
made.`,
		GroupID: groupCluster,
	}
	cmd.AddCommand(newTokenCreateCommand(o), newTokenListCommand(o), newTokenRevokeCommand(o))
	requireSubcommand(cmd)
	return cmd
}

func newTokenCreateCommand(o *rootOptions) *cobra.Command {
	var (
		ttl        time.Duration
		quiet      bool
		role       string
		namespaces []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--role viewer|deployer|admin] [--namespace NS]... [--ttl DURATION]",
		Short: "Make an API token; its secret is shown this once",
		Long: `Make an API token named NAME (what it is for). The secret is printed once:
the cluster keeps only a hash of it. Without --ttl the token lasts until it
is revoked. --role and --namespace (repeatable) limit what it may do;
without them it has your own role and namespaces.`,
		Example: `  berth token create ci --role deployer --namespace team-a --ttl 720h
  berth token create dashboard-readonly --role viewer
  TOKEN=$(berth token create dashboard -q)
  curl --cacert ca.pem -H "Authorization: Bearer $TOKEN" -d '{}' \
    https://127.0.0.1:4243/berth.v1.ClusterService/ListNodes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkRole(role, true); err != nil {
				return err
			}
			if ttl < 0 {
				return usageErrorf("--ttl %s is negative: give a positive duration such as 24h, or none for a token that does not expire", ttl)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.CreateAPITokenRequest{Name: args[0], Role: role, Namespaces: namespaces}
				if ttl > 0 {
					req.Ttl = durationpb.New(ttl)
				}
				resp, err := c.CreateAPIToken(ctx, req)
				if err != nil {
					return fmt.Errorf("create API token %q: %w", args[0], err)
				}
				w := cmd.OutOrStdout()
				if quiet {
					fmt.Fprintln(w, resp.GetSecret())
					return nil
				}
				tok := resp.GetToken()
				fmt.Fprintf(w, "API token %q (id %s), a %s in %s, made. Its secret, shown this once:\n\n    %s\n\n",
					tok.GetName(), tok.GetId(), tokenRole(tok), namespacesText(tok.GetNamespaces()), resp.GetSecret())
				if exp := resp.GetToken().GetExpiresAt(); exp != nil {
					fmt.Fprintf(w, "It expires at %s.\n", exp.AsTime().Local().Format(time.RFC1123))
				}
				fmt.Fprintln(w, `Use it with berth --token <secret> (or BERTH_TOKEN), or send it as "Authorization: Bearer <secret>" to the HTTP/JSON API.`)
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is valid, e.g. 24h (default: until revoked)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the secret")
	cmd.Flags().StringVar(&role, "role", "", "viewer, deployer or admin (default: your own role)")
	cmd.Flags().StringArrayVar(&namespaces, "namespace", nil, "a namespace the token may act in; repeat for more (default: your own namespaces)")
	return cmd
}

// tokenRow is one API token as `berth token ls` shows it.
type tokenRow struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Role       string   `json:"role"`
	Namespaces []string `json:"namespaces"`
	CreatedBy  string   `json:"createdBy,omitempty"`
	Created    string   `json:"created"`
	Expires    string   `json:"expires,omitempty"`
	Expired    bool     `json:"expired"`
}

func newTokenListCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the API tokens (never their secrets)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListAPITokens(ctx, &berthv1.ListAPITokensRequest{})
				if err != nil {
					return fmt.Errorf("list API tokens: %w", err)
				}
				now := time.Now()
				rows := []tokenRow{}
				for _, t := range resp.GetTokens() {
					exp := t.GetExpiresAt()
					rows = append(rows, tokenRow{
						ID: t.GetId(), Name: t.GetName(), Role: tokenRole(t), Namespaces: t.GetNamespaces(), CreatedBy: t.GetCreatedBy(),
						Created: stamp(t.GetCreatedAt()), Expires: stamp(exp),
						Expired: exp != nil && !now.Before(exp.AsTime()),
					})
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "ID\tNAME\tROLE\tNAMESPACES\tCREATED\tEXPIRES")
					for _, r := range rows {
						expires := r.Expires
						switch {
						case expires == "":
							expires = "never"
						case r.Expired:
							expires += " (expired)"
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Role, namespacesColumn(r.Namespaces), r.Created, expires)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newTokenRevokeCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke TOKEN",
		Aliases: []string{"rm"},
		Short:   "Revoke an API token, by name or id; requests carrying it fail from then on, and its streams end",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				if _, err := c.RevokeAPIToken(ctx, &berthv1.RevokeAPITokenRequest{Token: args[0]}); err != nil {
					return fmt.Errorf("revoke API token %q: %w", args[0], err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "API token %s revoked\n", args[0])
				return nil
			})
		},
	}
}

// tokenRole is a token's role; tokens made before roles are admins.
func tokenRole(t *berthv1.APIToken) string {
	if t.GetRole() == "" {
		return "admin"
	}
	return t.GetRole()
}

// checkRole checks a --role flag; empty is allowed when optional.
func checkRole(role string, optional bool) error {
	switch role {
	case "viewer", "deployer", "admin":
		return nil
	case "":
		if optional {
			return nil
		}
		return usageErrorf("--role is required: viewer, deployer or admin")
	}
	return usageErrorf("--role %q: use viewer, deployer or admin", role)
}

// namespacesText says which namespaces a grant covers, in a sentence.
func namespacesText(ns []string) string {
	if len(ns) == 0 {
		return "every namespace"
	}
	return "namespaces " + strings.Join(ns, ", ")
}

// namespacesColumn is a grant's namespaces in a table: * for all.
func namespacesColumn(ns []string) string {
	if len(ns) == 0 {
		return "*"
	}
	return strings.Join(ns, ",")
}
