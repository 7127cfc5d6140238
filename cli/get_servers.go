package cli

import (
	"context"
	"fmt"
	"io"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/spf13/cobra"
)

// serverRow is one control plane server as "berth get servers" shows it.
type serverRow struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Version string `json:"version"`
	Started string `json:"started"`
	Gossip  string `json:"gossip"`
	started string
}

func newGetServersCommand(o *rootOptions) *cobra.Command {
	var (
		out   *outputFormat
		watch *bool
	)
	cmd := &cobra.Command{
		Use:     "servers",
		Aliases: []string{"server"},
		Short:   "List the control plane's servers and which one leads",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				return c.show(ctx, cmd.OutOrStdout(), *out, *watch, "", func(ctx context.Context) (listing, error) {
					resp, err := c.ListServers(ctx, &berthv1.ListServersRequest{})
					if err != nil {
						return listing{}, fmt.Errorf("list servers: %w", err)
					}
					now := o.now()
					rows := []serverRow{}
					for _, s := range resp.GetServers() {
						rows = append(rows, serverRow{
							ID: s.GetId(), Address: s.GetAddress(), Leader: s.GetLeader(), Version: s.GetVersion(),
							Started: rfc3339(s.GetStartedAt()), Gossip: s.GetGossipAddress(), started: ago(now, s.GetStartedAt()),
						})
					}
					return listing{rows: rows, key: rows, table: func(w io.Writer) {
						fmt.Fprintln(w, "ID\tADDRESS\tLEADER\tVERSION\tSTARTED")
						for _, r := range rows {
							leader := ""
							if r.Leader {
								leader = "yes"
							}
							fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", shortID(r.ID), r.Address, leader, r.Version, r.started)
						}
					}}, nil
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	watch = addWatchFlag(cmd)
	return cmd
}
