package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newTokenCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the API tokens that authenticate HTTP/JSON clients",
		Long: `Manage API tokens. A token lets a script or a tool call the cluster's
HTTP/JSON API (berth server --http-listen) without the admin client
certificate, with the header "Authorization: Bearer <token>". A token can do
everything the admin can: give it only to what you trust, with a --ttl when
it is for a while only, and revoke it when it is no longer needed.`,
		GroupID: groupCluster,
	}
	cmd.AddCommand(newTokenCreateCommand(o), newTokenListCommand(o), newTokenRevokeCommand(o))
	requireSubcommand(cmd)
	return cmd
}

func newTokenCreateCommand(o *rootOptions) *cobra.Command {
	var (
		ttl   time.Duration
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME [--ttl DURATION]",
		Short: "Make an API token; its secret is shown this once",
		Long: `Make an API token named NAME (what it is for). The secret is printed once:
the cluster keeps only a hash of it. Without --ttl the token lasts until it
is revoked.`,
		Example: `  berth token create ci --ttl 720h
  TOKEN=$(berth token create dashboard -q)
  curl --cacert ca.pem -H "Authorization: Bearer $TOKEN" -d '{}' \
    https://127.0.0.1:4243/berth.v1.ClusterService/ListNodes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return fmt.Errorf("--ttl %s is negative: give a positive duration such as 24h, or none for a token that does not expire", ttl)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.CreateAPITokenRequest{Name: args[0]}
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
				fmt.Fprintf(w, "API token %q (id %s) made. Its secret, shown this once:\n\n    %s\n\n", resp.GetToken().GetName(), resp.GetToken().GetId(), resp.GetSecret())
				if exp := resp.GetToken().GetExpiresAt(); exp != nil {
					fmt.Fprintf(w, "It expires at %s.\n", exp.AsTime().Local().Format(time.RFC1123))
				}
				fmt.Fprintln(w, `Send it as "Authorization: Bearer <secret>" to the HTTP/JSON API.`)
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is valid, e.g. 24h (default: until revoked)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the secret")
	return cmd
}

// tokenRow is one API token as `berth token ls` shows it.
type tokenRow struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Created string `json:"created"`
	Expires string `json:"expires,omitempty"`
	Expired bool   `json:"expired"`
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
						ID: t.GetId(), Name: t.GetName(), Created: stamp(t.GetCreatedAt()), Expires: stamp(exp),
						Expired: exp != nil && !now.Before(exp.AsTime()),
					})
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "ID\tNAME\tCREATED\tEXPIRES")
					for _, r := range rows {
						expires := r.Expires
						switch {
						case expires == "":
							expires = "never"
						case r.Expired:
							expires += " (expired)"
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Created, expires)
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
		Short:   "Revoke an API token, by name or id; requests carrying it fail from then on",
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
