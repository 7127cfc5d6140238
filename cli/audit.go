package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// auditRow is one audit record as "berth audit" shows it.
type auditRow struct {
	ID        string `json:"id"`
	Time      string `json:"time"`
	Principal string `json:"principal"`
	Role      string `json:"role"`
	Method    string `json:"method"`
	Namespace string `json:"namespace"`
	Target    string `json:"target"`
	Code      string `json:"code"`
	Message   string `json:"message,omitempty"`
	Peer      string `json:"peer"`

	at time.Time
}

func newAuditRow(rec *berthv1.AuditRecord) auditRow {
	return auditRow{
		ID: rec.GetId(), Time: rfc3339(rec.GetTime()), Principal: rec.GetPrincipal(), Role: rec.GetRole(),
		Method: rec.GetMethod(), Namespace: rec.GetNamespace(), Target: rec.GetTarget(),
		Code: rec.GetCode(), Message: rec.GetMessage(), Peer: rec.GetPeer(), at: rec.GetTime().AsTime(),
	}
}

// auditColumns lays out a followed row: rows are printed as they come, so
// columns cannot be sized from all of them.
const auditColumns = "%-19s   %-20s   %-8s   %-15s   %-12s   %-24s   %s\n"

func newAuditCommand(o *rootOptions) *cobra.Command {
	var (
		since  string
		user   string
		limit  uint32
		follow bool
		out    *outputFormat
	)
	cmd := &cobra.Command{
		Use:   "audit [--since 2h|TIME] [--user NAME] [-n NAMESPACE] [-f]",
		Short: "List who changed what in the cluster, and with what result",
		Long: `List the audit log, oldest first: every call that changed something, or
tried to (refused calls included), with who made it (a certificate's or a
token's name), its role, the action, the namespace, what it acted on and
the result.

By default the records of the last 24 hours, of every namespace. --user
keeps one caller's records: "user/alice" or "token/ci", or a bare name
matching any kind. -n keeps one namespace's. The cluster keeps records for
its --audit-retention (30 days unless set).

With -f, the records are followed by each new one as it is written, until
interrupted (Ctrl-C); -o json then prints one JSON object a line. Reading
the audit log needs the admin role.`,
		Example: `  # What changed in the last two hours
  berth audit --since 2h

  # Everything one token did in namespace team-a, as JSON
  berth audit --user token/ci -n team-a -o json

  # Watch changes as they are made
  berth audit -f`,
		GroupID: groupCluster,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &berthv1.AuditRequest{Principal: user, Limit: limit, Follow: follow}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageErrorf("%s", err)
				}
				req.Since = timestamppb.New(t)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				// Every namespace unless one is asked for: the config's
				// namespace is where to work, not what to review.
				if cmd.Flags().Changed("namespace") {
					req.Namespace = c.namespace
				}
				return c.audit(ctx, req, cmd.OutOrStdout(), *out)
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records since this long ago (2h, 30m) or this time (RFC 3339); default the last 24 hours")
	cmd.Flags().StringVar(&user, "user", "", `only the records of this caller: "user/alice", "token/ci", or a bare name of any kind`)
	cmd.Flags().Uint32Var(&limit, "limit", 1000, "most recent records to show")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep showing new records as they are written, until interrupted")
	out = addOutputFlag(cmd)
	return cmd
}

// audit prints the records req selects; with req.Follow, each as it comes.
func (c *cluster) audit(ctx context.Context, req *berthv1.AuditRequest, w io.Writer, format outputFormat) error {
	stream, err := c.Audit(ctx, req)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if req.Follow && format != formatJSON && format != formatYAML {
		fmt.Fprintf(w, auditColumns, "TIME", "WHO", "ROLE", "ACTION", "NAMESPACE", "TARGET", "RESULT")
	}
	var rows []auditRow
	for {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) || (req.Follow && isCanceled(ctx, err)) {
			break
		}
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if req.Follow {
			if err := printAuditRow(w, format, newAuditRow(rec)); err != nil {
				return err
			}
			continue
		}
		rows = append(rows, newAuditRow(rec))
	}
	if req.Follow {
		return nil
	}
	if rows == nil {
		rows = []auditRow{}
	}
	return printList(w, format, rows, func(tw io.Writer) {
		fmt.Fprintln(tw, "TIME\tWHO\tROLE\tACTION\tNAMESPACE\tTARGET\tRESULT")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.at.Local().Format(time.DateTime), r.Principal, orDash(r.Role), r.Method, orDash(r.Namespace), orDash(r.Target), r.result())
		}
	})
}

// result is the RESULT column: the code, and why a call failed.
func (r auditRow) result() string {
	if r.Message == "" {
		return r.Code
	}
	return r.Code + ": " + r.Message
}

// printAuditRow writes one followed audit row.
func printAuditRow(w io.Writer, format outputFormat, r auditRow) error {
	return printFollowedRow(w, format, r, func() error {
		_, err := fmt.Fprintf(w, auditColumns, r.at.Local().Format(time.DateTime), r.Principal, orDash(r.Role), r.Method, orDash(r.Namespace), orDash(r.Target), r.result())
		return err
	})
}
