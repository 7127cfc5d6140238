package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newTriggerCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "trigger",
		Aliases: []string{"triggers"},
		GroupID: groupApps,
		Short:   "Build, push and roll out a service on each push to a git branch",
		Long: `Manage build triggers. A trigger takes webhooks from a git host (GitHub,
Gitea, Forgejo) at /hooks/NAME on the server's HTTP API
(/hooks/NAMESPACE/NAME outside the default namespace). A push to its branch
builds that commit on a ready node (whose BuildKit fetches the repository),
tags the image with the commit id and the branch, pushes it to its
registry with the credentials the cluster holds (berth login), scans and
signs it, and rolls the service out to the new digest by its
update_config. A failed step leaves the service as it was and says why in
"berth trigger runs".

A webhook is authorised by its X-Hub-Signature-256 header alone (an
HMAC-SHA256 of the body under the trigger's secret): no certificate or
token. The secret is made by the cluster, printed once by create, and
kept sealed.`,
	}
	cmd.AddCommand(newTriggerCreateCommand(o), newTriggerListCommand(o), newTriggerRunsCommand(o),
		newTriggerLogsCommand(o), newTriggerRemoveCommand(o))
	return cmd
}

func newTriggerCreateCommand(o *rootOptions) *cobra.Command {
	var req berthv1.CreateTriggerRequest
	cmd := &cobra.Command{
		Use:   "create NAME --git URL --branch BRANCH [--path DIR] --image REGISTRY/REPOSITORY --service APP/SERVICE [--sign KEY]",
		Short: "Make a build trigger and print its webhook's path and secret (shown this once)",
		Example: `  berth trigger create web --git https://git.example.com/team/shop.git --branch main \
    --path web --image registry.example.com/team/web --service shop/web`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req.Namespace = c.namespace
				resp, err := c.CreateTrigger(ctx, &req)
				if err != nil {
					return fmt.Errorf("create trigger %s: %w", req.Name, err)
				}
				t := resp.GetTrigger()
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "trigger %s created: pushes to %s of %s build %s and roll out %s/%s\n", t.Name, t.Branch, t.Git, t.Image, t.App, t.Service)
				fmt.Fprintf(w, "webhook path:   %s (on the server's HTTP API, POST, content type application/json)\n", resp.GetHookPath())
				fmt.Fprintf(w, "webhook secret: %s\n", resp.GetSecret())
				fmt.Fprintln(cmd.ErrOrStderr(), "The secret is shown this once: paste it into the webhook's settings now.")
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Git, "git", "", "the repository's URL (https://host/repo.git, git://host/repo, ssh://user@host/repo.git)")
	f.StringVar(&req.Branch, "branch", "", "the branch whose pushes are built")
	f.StringVar(&req.Path, "path", "", "the build context's directory in the repository (default: its root)")
	f.StringVar(&req.Image, "image", "", "the repository the image is pushed to, without tag (REGISTRY/REPOSITORY)")
	f.StringVar(&req.Service, "service", "", "the service rolled out to each new image, as APP/SERVICE")
	f.StringVar(&req.SignKey, "sign", "", "sign each image with this cluster key")
	return cmd
}

// triggerRow is a trigger as ls shows it.
type triggerRow struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Git       string    `json:"git"`
	Branch    string    `json:"branch"`
	Path      string    `json:"path,omitempty"`
	Image     string    `json:"image"`
	Service   string    `json:"service"`
	Sign      string    `json:"sign,omitempty"`
	Hook      string    `json:"hook"`
	LastRun   *runRow   `json:"lastRun,omitempty"`
	Created   time.Time `json:"created"`
}

// runRow is a run as runs and logs show it.
type runRow struct {
	ID       string    `json:"id"`
	Trigger  string    `json:"trigger"`
	Commit   string    `json:"commit"`
	Branch   string    `json:"branch"`
	State    string    `json:"state"`
	Message  string    `json:"message"`
	Image    string    `json:"image,omitempty"`
	Node     string    `json:"node,omitempty"`
	Pusher   string    `json:"pusher,omitempty"`
	Steps    []string  `json:"steps"`
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished,omitzero"`
	run      *berthv1.TriggerRun
}

func newRunRow(r *berthv1.TriggerRun) *runRow {
	return &runRow{
		ID: r.Id, Trigger: r.Trigger, Commit: r.Commit, Branch: r.Branch, State: runStateWord(r.State), Message: r.Message,
		Image: r.Image, Node: r.Node, Pusher: r.Pusher, Steps: nonNil(r.Steps),
		Created: timeOf(r.CreatedAt), Finished: timeOf(r.FinishedAt), run: r,
	}
}

// runStateWord is a run's state as the commands show it: "rolling-out".
func runStateWord(st berthv1.TriggerRunState) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(st.String(), "TRIGGER_RUN_STATE_")), "_", "-")
}

func newTriggerListCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the build triggers with their newest run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListTriggers(ctx, &berthv1.ListTriggersRequest{Namespace: c.namespace, AllNamespaces: c.allNamespaces})
				if err != nil {
					return fmt.Errorf("list triggers: %w", err)
				}
				rows := []triggerRow{}
				for _, s := range resp.GetTriggers() {
					t := s.GetTrigger()
					row := triggerRow{Namespace: t.Namespace, Name: t.Name, Git: t.Git, Branch: t.Branch, Path: t.Path, Image: t.Image,
						Service: t.App + "/" + t.Service, Sign: t.SignKey, Hook: s.GetHookPath(), Created: timeOf(t.GetMeta().GetCreatedAt())}
					if s.GetLastRun() != nil {
						row.LastRun = newRunRow(s.GetLastRun())
					}
					rows = append(rows, row)
				}
				now := o.now()
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, c.nsHeader()+"NAME\tBRANCH\tIMAGE\tSERVICE\tHOOK\tLAST RUN")
					for _, r := range rows {
						last := "-"
						if r.LastRun != nil {
							last = fmt.Sprintf("%s %s %s", r.LastRun.ID, r.LastRun.State, ago(now, r.LastRun.run.GetCreatedAt()))
						}
						fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\t%s\n", c.nsCell(r.Namespace), r.Name, r.Branch, r.Image, r.Service, r.Hook, last)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

func newTriggerRunsCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "runs NAME",
		Short: "List a trigger's runs, newest first, with their state and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.ListTriggerRuns(ctx, &berthv1.ListTriggerRunsRequest{Namespace: c.namespace, Name: args[0]})
				if err != nil {
					return fmt.Errorf("list the runs of trigger %s: %w", args[0], err)
				}
				rows := []*runRow{}
				for _, r := range resp.GetRuns() {
					rows = append(rows, newRunRow(r))
				}
				now := o.now()
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, "RUN\tCOMMIT\tSTATE\tCREATED\tMESSAGE")
					for _, r := range rows {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, shortCommit(r.Commit), r.State, ago(now, r.run.GetCreatedAt()), r.Message)
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newTriggerLogsCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "logs RUN",
		Short: "Show a run's steps and log (its build's progress)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.GetTriggerRunLog(ctx, &berthv1.GetTriggerRunLogRequest{Namespace: c.namespace, Run: args[0]})
				if err != nil {
					return fmt.Errorf("logs of run %s: %w", args[0], err)
				}
				r, w := resp.GetRun(), cmd.OutOrStdout()
				fmt.Fprintf(w, "run %s of trigger %s: commit %s of %s, %s: %s\n", r.Id, r.Trigger, r.Commit, r.Branch, runStateWord(r.State), r.Message)
				if l := resp.GetLog(); l.GetTruncated() {
					fmt.Fprintln(w, "(the log's beginning was dropped to keep it bounded)")
				}
				_, err = io.WriteString(w, resp.GetLog().GetText())
				return err
			})
		},
	}
}

func newTriggerRemoveCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove triggers with their runs (a run under way stops; the service keeps what it runs)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var errs []error
				for _, name := range args {
					if _, err := c.RemoveTrigger(ctx, &berthv1.RemoveTriggerRequest{Namespace: c.namespace, Name: name}); err != nil {
						errs = append(errs, fmt.Errorf("remove trigger %s: %w", name, err))
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "trigger %s removed\n", name)
				}
				return errors.Join(errs...)
			})
		},
	}
}

// shortCommit is a commit id as people read it.
func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
