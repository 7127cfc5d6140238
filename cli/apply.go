package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/compose"
	"github.com/berthproject/berth/api/validation"
)

func newApplyCommand(o *rootOptions) *cobra.Command {
	var (
		files    []string
		project  string
		profiles []string
		dryRun   bool
		diff     bool
		wait     bool
		timeout  time.Duration
		progress string
	)
	cmd := &cobra.Command{
		Use:   "apply [-f FILE...]",
		Short: "Create or update an app from Compose files",
		Long: `Make an app exactly what its Compose files describe.

The files are merged in order, later ones overriding earlier ones, with
variables interpolated from the environment and .env. Without -f, the
compose.yaml (or compose.yml) of the working directory or its nearest parent
is used, with its override file. The app is named by -p, else by the files'
"name:", else by the directory of the first file.

New services are created, changed ones are rolled out, and services of the
app that the files no longer mention are removed. Nothing is written when
anything is invalid: every problem is listed with its file, service and
field. --dry-run shows what would change without changing it; --diff
prints, before applying, each spec field that changes, service by
service: "~ deploy.replicas: 1 → 2", "+ environment.FOO: "a"",
"- ports: {target: 80, ...}" (with --dry-run, only that).

The volumes, secrets and configs the files define are sent with the app:
a secret's or config's data is read from its file:, environment: (or, for a
config, content:) when you apply, and no other output shows it; external
ones must exist already ("berth secret create"). Build secrets
(build.secrets) go to their build only.

Services with build: are built first, each on a node the cluster picks
(see "berth build"), and run the image built, pinned by its digest; the
image is named by the service's image:, else <app>-<service>:latest. A
failed build stops the apply before anything is changed; --dry-run builds
nothing.

--wait blocks until every service runs its new spec: each wanted task runs
the current version (and passes its health check when it has one) and no
rollout is under way. It fails at once when a rollout pauses or is rolled
back, or when a task failed and its restart policy gave up, and after
--timeout naming the services that have not converged and why.`,
		Example: `  # Run the app described in ./compose.yaml
  berth apply

  # Merge an override file, name the app, enable a profile
  berth apply -f compose.yaml -f compose.prod.yaml -p shop --profile debug

  # See what would change
  berth apply -f compose.yaml --dry-run

  # See each field that would change, and change nothing
  berth apply --diff --dry-run

  # Apply, then wait until the new version runs everywhere (or fails)
  berth apply -f compose.yaml --wait --timeout 5m`,
		GroupID: groupApps,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			stderr := cmd.ErrOrStderr()
			if wait && dryRun {
				return usageErrorf("--wait and --dry-run do not go together: a dry run changes nothing to wait for")
			}
			if cmd.Flags().Changed("timeout") && !wait {
				return usageErrorf("--timeout bounds --wait: add --wait")
			}
			mode, err := displayMode(progress)
			if err != nil {
				return err
			}
			p, err := compose.Load(ctx, compose.Options{Files: files, Project: project, Profiles: profiles})
			if err != nil {
				return reportInvalid(stderr, err)
			}
			for _, w := range p.Warnings {
				fmt.Fprintf(stderr, "warning: %s\n", w)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var versions map[string]int64
				if wait {
					if versions, err = c.serviceVersions(ctx, p.App); err != nil {
						return err
					}
				}
				if err := c.buildServices(ctx, p, stderr, mode, dryRun); err != nil {
					return err
				}
				req := &berthv1.ApplyRequest{
					Namespace: c.namespace,
					App:       p.App,
					Services:  p.Services,
					Networks:  p.Networks,
					Secrets:   p.Secrets,
					Configs:   p.Configs,
					Volumes:   p.Volumes,
					DryRun:    dryRun,
				}
				if diff {
					if err := c.printNetworkDiff(ctx, cmd.OutOrStdout(), p.App, p.Networks); err != nil {
						return err
					}
					if err := c.printDiff(ctx, cmd.OutOrStdout(), p.App, p.Services); err != nil {
						return err
					}
				}
				var header metadata.MD
				resp, err := c.Apply(ctx, req, grpc.Header(&header))
				if err != nil {
					return reportInvalid(stderr, fmt.Errorf("apply %s: %w", p.App, err))
				}
				// Such as a tag that could not be pinned to a digest.
				printWarnings(stderr, header)
				out := cmd.OutOrStdout()
				for _, line := range networkLines(resp.GetCreatedNetworks(), "created", dryRun) {
					fmt.Fprintln(out, line)
				}
				for _, ch := range resp.GetChanges() {
					fmt.Fprintln(out, changeLine(ch, dryRun))
				}
				for _, line := range networkLines(resp.GetRemovedNetworks(), "removed", dryRun) {
					fmt.Fprintln(out, line)
				}
				if dryRun {
					fmt.Fprintln(stderr, "dry run: nothing was changed")
				}
				if wait {
					return c.waitConverged(ctx, out, applied(p.App, p.Services, resp.GetChanges(), versions), timeout)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "Compose file; repeat to merge several (default: ./compose.yaml)")
	cmd.Flags().StringVarP(&project, "app", "p", "", "app name (default: the files' name, else the first file's directory)")
	// Compose users type --project-name; it means the same as --app.
	cmd.Flags().SetNormalizeFunc(func(f *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "project-name" {
			name = "app"
		}
		return pflag.NormalizedName(name)
	})
	cmd.Flags().StringArrayVar(&profiles, "profile", nil, "enable services of this Compose profile; repeat for several")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show the changes without making them")
	cmd.Flags().BoolVar(&diff, "diff", false, "print each spec field that changes before applying")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every service runs its new spec, and fail if a rollout fails")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	cmd.Flags().StringVar(&progress, "progress", "auto", "progress display of the builds (build:): auto, tty or plain")
	return cmd
}

// reportInvalid prints every validation problem in err, one a line, and
// returns an error saying nothing was changed; other errors pass through.
func reportInvalid(w io.Writer, err error) error {
	errs, ok := validation.FromError(err)
	if !ok || len(errs) == 0 {
		return err
	}
	if len(errs) == 1 {
		return fmt.Errorf("%s; nothing was changed", errs[0].Error())
	}
	// Each problem on its own line, in the "berth: " form of every
	// other error, then the count as the error Execute prints.
	for _, fe := range errs {
		fmt.Fprintf(w, "berth: %s\n", fe.Error())
	}
	return fmt.Errorf("%d problems found; nothing was changed", len(errs))
}

// changeLine says what Apply did (or, in a dry run, would do) to a service:
// "service web created", "service worker updated (replicas, image)".
func changeLine(ch *berthv1.ServiceChange, dryRun bool) string {
	var verb string
	switch ch.GetAction() {
	case berthv1.ChangeAction_CHANGE_ACTION_CREATE:
		verb = "created"
	case berthv1.ChangeAction_CHANGE_ACTION_UPDATE:
		verb = "updated"
		if len(ch.GetFields()) > 0 {
			verb += " (" + strings.Join(ch.GetFields(), ", ") + ")"
		}
	case berthv1.ChangeAction_CHANGE_ACTION_REMOVE:
		verb = "removed"
	case berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED:
		return "service " + ch.GetService() + " unchanged"
	default:
		verb = "changed"
	}
	if dryRun {
		verb = "would be " + verb
	}
	return "service " + ch.GetService() + " " + verb
}
