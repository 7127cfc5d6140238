package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
)

func newRolloutCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow, list, undo and restart the rollouts of a service's spec",
		Long: `Each apply that changes what a service runs makes a new spec version, rolled
out task by task as the service's update_config says. "rollout status"
tells how the current one goes, "rollout history" lists the versions kept
(the last 10) and what changed in each, "rollout undo" returns to an
earlier one, and "rollout restart" replaces every task with a fresh one.`,
		GroupID: groupApps,
	}
	cmd.AddCommand(newRolloutStatusCommand(o), newRolloutHistoryCommand(o), newRolloutUndoCommand(o), newRolloutRestartCommand(o))
	requireSubcommand(cmd)
	return cmd
}

// serviceArg parses an argument that must name one service, APP/SERVICE.
func serviceArg(s string) (app, name string, err error) {
	app, name, err = splitAppService(s)
	if err != nil {
		return "", "", err
	}
	if name == "" {
		return "", "", usageErrorf("%q names an app: name one of its services as %s/SERVICE (`berth get services %s` lists them)", s, app, app)
	}
	return app, name, nil
}

// serviceRunE is the RunE of a command whose one argument names a
// service: it checks that the argument is APP/SERVICE, connects, and runs
// fn with the connection.
func (o *rootOptions) serviceRunE(fn func(ctx context.Context, cmd *cobra.Command, c *cluster, app, name string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		app, name, err := serviceArg(args[0])
		if err != nil {
			return err
		}
		return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
			return fn(ctx, cmd, c, app, name)
		})
	}
}

func newRolloutStatusCommand(o *rootOptions) *cobra.Command {
	var (
		watch   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status APP/SERVICE",
		Short: "Show how the rollout of a service's current spec goes",
		Long: `Show the state of a service's rollout (updating, paused, completed,
rollback-started, rollback-paused, rollback-completed), how many of its
wanted tasks run the current spec version (and pass their health check),
and what the rest wait for.

With -w, follow it, a line per change, until the service has converged, or
the rollout paused or was rolled back. The command exits non-zero when the
rollout paused, when an update was rolled back, or when a task failed and
its restart policy gave up.`,
		Example: `  berth rollout status shop/web
  berth rollout status shop/web -w --timeout 10m`,
		Args: cobra.ExactArgs(1),
		RunE: o.serviceRunE(func(ctx context.Context, cmd *cobra.Command, c *cluster, app, name string) error {
			full := app + "/" + name
			out := cmd.OutOrStdout()
			if !watch {
				svc, v, err := c.judgeService(ctx, app, name)
				if err != nil {
					return err
				}
				printRolloutStatus(out, svc, v, time.Now())
				return rolloutFailure(full, v)
			}
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			p := newProgress(out)
			var last rolloutVerdict
			err := c.follow(ctx, app, func(ctx context.Context) (bool, error) {
				_, v, err := c.judgeService(ctx, app, name)
				if err != nil {
					return false, err
				}
				last = v
				p.report(full, v)
				if v.Phase == phaseFailed {
					return false, rolloutFailure(full, v)
				}
				return v.Phase == phaseConverged, nil
			})
			switch {
			case err == nil:
				return nil
			case errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil:
				return fmt.Errorf("%s has not converged after %s: %s", full, timeout, last.summary())
			case isCanceled(cmd.Context(), err):
				return nil
			}
			return err
		}),
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it completes, pauses or is rolled back")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with -w, give up after this long (0: no limit)")
	return cmd
}

// judgeService reads one service and judges its rollout.
func (c *cluster) judgeService(ctx context.Context, app, name string) (*berthv1.Service, rolloutVerdict, error) {
	r, err := c.readApp(ctx, app, name)
	if err != nil {
		return nil, rolloutVerdict{}, err
	}
	if len(r.services) == 0 {
		return nil, rolloutVerdict{}, fmt.Errorf("no service %s/%s in namespace %q; `berth get services` lists them", app, name, c.namespace)
	}
	svc := r.services[0]
	return svc, judgeRollout(r.input(svc)), nil
}

// rolloutFailure is the error a failed verdict ends a command with, with
// what to do about it; nil for other verdicts.
func rolloutFailure(full string, v rolloutVerdict) error {
	if v.Phase != phaseFailed {
		return nil
	}
	var hint string
	switch v.State {
	case "paused":
		hint = fmt.Sprintf("fix the spec and apply again, or return to the previous one with `berth rollout undo %s`", full)
	case "rollback-completed":
		hint = "fix the spec and apply again"
	case "rollback-paused":
		hint = fmt.Sprintf("see `berth ps %s` and `berth events %s`, then apply a spec that works", full, full)
	default:
		hint = fmt.Sprintf("see `berth ps %s` and `berth events %s`", full, full)
	}
	return fmt.Errorf("%s: %s; %s", full, v.Reason, hint)
}

// printRolloutStatus writes a service's rollout as "Key: value" lines.
func printRolloutStatus(w io.Writer, svc *berthv1.Service, v rolloutVerdict, now time.Time) {
	version := fmt.Sprint(svc.GetSpecVersion())
	if cause := svc.GetChangeCause(); cause != "" {
		version += ", " + cause
	}
	if made := svc.GetSpecUpdatedAt(); made != nil {
		version += ", " + ago(now, made)
	}
	var rollout string
	if us := svc.GetUpdateStatus(); us != nil && v.State != "" {
		rollout = v.State
		if from := us.GetFromVersion(); from != 0 {
			rollout += fmt.Sprintf(" from version %d", from)
		}
		if at := us.GetCompletedAt(); at != nil {
			rollout += ", ended " + ago(now, at)
		} else if at := us.GetStartedAt(); at != nil {
			rollout += ", started " + ago(now, at)
		}
	}
	var message string
	if v.State != "" {
		message = svc.GetUpdateStatus().GetMessage()
	}
	status := map[rolloutPhase]string{phaseConverging: "converging", phaseConverged: "converged", phaseFailed: "failed"}[v.Phase]
	if v.Reason != "" {
		status += ": " + v.Reason
	}
	fields(w,
		"Service", svc.GetApp()+"/"+svc.GetName(),
		"Spec version", version,
		"Rollout", cmp.Or(rollout, "none since the service was made"),
		"Tasks", fmt.Sprintf("%d/%d tasks updated", v.Updated, v.Wanted),
		"Message", message,
		"Status", status,
	)
}

// historyRow is one spec version as "rollout history" shows it.
type historyRow struct {
	Version uint64 `json:"version"`
	Current bool   `json:"current"`
	Created string `json:"created"`
	Cause   string `json:"cause"`
	// Changes names the spec fields that differ from the version before;
	// empty for the oldest version kept.
	Changes []string `json:"changes"`
	Image   string   `json:"image"`
	Digest  string   `json:"digest,omitempty"`
	// Signature is "signed by KEY", "unsigned", "not checked" or
	// "unknown: why", from the cluster's check of the digest.
	Signature string `json:"signature"`

	ago string
}

// withSignatures fills in the rows' signature state, asking the cluster
// once for every image digest. A cluster that cannot tell leaves them
// "not checked" and says why on warn.
func (c *cluster) withSignatures(ctx context.Context, rows []historyRow, warn io.Writer) {
	req := &berthv1.VerifyImagesRequest{Namespace: c.namespace}
	seen := map[[2]string]bool{}
	for i := range rows {
		rows[i].Signature = "not checked"
		k := [2]string{rows[i].Image, rows[i].Digest}
		if rows[i].Digest == "" || seen[k] {
			continue
		}
		seen[k] = true
		req.Images = append(req.Images, &berthv1.ImageDigest{Image: k[0], Digest: k[1]})
	}
	if len(req.Images) == 0 {
		return
	}
	resp, err := c.VerifyImages(ctx, req)
	if err != nil {
		if status.Code(err) != codes.Unimplemented {
			fmt.Fprintf(warn, "warning: signatures not checked: %v\n", err)
		}
		return
	}
	state := map[[2]string]string{}
	for _, v := range resp.GetVerdicts() {
		var s string
		switch v.GetState() {
		case berthv1.SignatureState_SIGNATURE_STATE_SIGNED:
			s = "signed by " + v.GetSigner()
		case berthv1.SignatureState_SIGNATURE_STATE_UNSIGNED:
			s = "unsigned"
		case berthv1.SignatureState_SIGNATURE_STATE_UNKNOWN:
			s = "unknown: " + v.GetError()
		default:
			s = "not checked"
		}
		state[[2]string{v.GetImage(), v.GetDigest()}] = s
	}
	for i := range rows {
		if s, ok := state[[2]string{rows[i].Image, rows[i].Digest}]; ok {
			rows[i].Signature = s
		}
	}
}

func newRolloutHistoryCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "history APP/SERVICE",
		Short: "List a service's spec versions: when, why, and what changed",
		Long: `List the spec versions a service keeps (the last 10 and the current one),
oldest first: when each was made, what made it (an apply, a rollback), and
which spec fields differ from the version before it; the image and digest
each version runs, and whether that digest is signed: "signed by KEY"
(checked against the keys of the trust policy that covers the image, else
the namespace's keys), "unsigned", or "not checked" (no key to check with,
or no digest).`,
		Example: `  berth rollout history shop/web
  berth rollout history shop/web -o json`,
		Args: cobra.ExactArgs(1),
		RunE: o.serviceRunE(func(ctx context.Context, cmd *cobra.Command, c *cluster, app, name string) error {
			svc, err := c.GetService(ctx, &berthv1.GetServiceRequest{Namespace: c.namespace, App: app, Name: name})
			if err != nil {
				return fmt.Errorf("get service %s/%s: %w", app, name, err)
			}
			rows := historyRows(svc, time.Now())
			c.withSignatures(ctx, rows, cmd.ErrOrStderr())
			return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
				fmt.Fprintln(w, "VERSION\tCREATED\tCAUSE\tIMAGE\tDIGEST\tSIGNATURE\tCHANGES")
				for _, r := range rows {
					version := fmt.Sprint(r.Version)
					if r.Current {
						version += " (current)"
					}
					changes := strings.Join(r.Changes, ", ")
					if r.Version == 1 {
						changes = "(first version)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", version, cmp.Or(r.ago, "-"), cmp.Or(r.Cause, "-"), cmp.Or(r.Image, "-"), cmp.Or(shortDigest(r.Digest), "-"), r.Signature, cmp.Or(changes, "-"))
				}
			})
		}),
	}
	out = addOutputFlag(cmd)
	return cmd
}

// historyRows lists svc's revisions, oldest first, then its current spec.
func historyRows(svc *berthv1.Service, now time.Time) []historyRow {
	revs := svc.GetRevisions()
	if n := len(revs); n > 0 && revs[n-1].GetSpecVersion() == svc.GetSpecVersion() {
		revs = revs[:n-1]
	}
	rows := make([]historyRow, 0, len(revs)+1)
	var prev *berthv1.ServiceSpec
	add := func(version uint64, spec *berthv1.ServiceSpec, created string, at string, cause string, current bool) {
		// Never null in JSON: the oldest version kept lists no changes.
		changes := []string{}
		if prev != nil {
			changes = append(changes, revision.ChangedFields(prev, spec)...)
		}
		rows = append(rows, historyRow{Version: version, Current: current, Created: created, Cause: cause, Changes: changes,
			Image: spec.GetImage(), Digest: spec.GetImageDigest(), ago: at})
		prev = spec
	}
	for _, r := range revs {
		add(r.GetSpecVersion(), r.GetSpec(), rfc3339(r.GetCreatedAt()), ago(now, r.GetCreatedAt()), r.GetChangeCause(), false)
	}
	made := svc.GetSpecUpdatedAt()
	if made == nil {
		made = svc.GetMeta().GetCreatedAt()
	}
	add(svc.GetSpecVersion(), svc.GetSpec(), rfc3339(made), ago(now, made), svc.GetChangeCause(), true)
	return rows
}

func newRolloutUndoCommand(o *rootOptions) *cobra.Command {
	var toVersion uint64
	cmd := &cobra.Command{
		Use:   "undo APP/SERVICE",
		Short: "Return a service to an earlier spec version",
		Long: `Make an earlier spec of a service current again: the one before the current
spec, or the version --to-version names ("rollout history" lists them). The
rollback makes a new spec version, rolled out by the service's
rollback_config. Replicas, depends_on and the update and rollback configs
stay as they are.

The Compose file still says what it said: apply it again and the service
returns to it.`,
		Example: `  berth rollout undo shop/web
  berth rollout undo shop/web --to-version 3`,
		Args: cobra.ExactArgs(1),
		RunE: o.serviceRunE(func(ctx context.Context, cmd *cobra.Command, c *cluster, app, name string) error {
			full := app + "/" + name
			svc, err := c.RollbackService(ctx, &berthv1.RollbackServiceRequest{
				Namespace: c.namespace, App: app, Service: name, ToVersion: toVersion,
			})
			if err != nil {
				return fmt.Errorf("roll back %s: %w", full, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s started as spec version %d; follow it with `berth rollout status %s -w`\n",
				full, cmp.Or(svc.GetChangeCause(), "rollback"), svc.GetSpecVersion(), full)
			return nil
		}),
	}
	cmd.Flags().Uint64Var(&toVersion, "to-version", 0, "spec version to return to (default: the one before the current)")
	return cmd
}

func newRolloutRestartCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "restart APP/SERVICE",
		Short: "Replace every task of a service with a fresh one",
		Long: `Start a new spec version that differs from the current one only by a restart
count, so every task is replaced, as the service's update_config says
(parallelism, order, delay, monitor). The Compose file needs no change, and
applying it again does not undo the restart.`,
		Example: `  berth rollout restart shop/web
  berth rollout status shop/web -w`,
		Args: cobra.ExactArgs(1),
		RunE: o.serviceRunE(func(ctx context.Context, cmd *cobra.Command, c *cluster, app, name string) error {
			full := app + "/" + name
			svc, err := c.RestartService(ctx, &berthv1.RestartServiceRequest{Namespace: c.namespace, App: app, Service: name})
			if err != nil {
				return fmt.Errorf("restart %s: %w", full, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: restart started as spec version %d; follow it with `berth rollout status %s -w`\n",
				full, svc.GetSpecVersion(), full)
			return nil
		}),
	}
}
