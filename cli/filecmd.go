package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/berthproject/berth/api/validation"
)

// fileRow is one secret or config as `berth secret|config ls` and
// `inspect` show it; a secret's never holds its data.
type fileRow struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	App       string            `json:"app,omitempty"`
	Version   uint64            `json:"version"`
	Digest    string            `json:"digest"`
	Size      int64             `json:"size"`
	Labels    map[string]string `json:"labels,omitempty"`
	Services  []string          `json:"services"`
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
	// Data is a config's data, with inspect --data only.
	Data *string `json:"data,omitempty"`

	updated *timestamppb.Timestamp
}

// owner says who made it: its app, or "shared".
func (r fileRow) owner() string {
	if r.App == "" {
		return "shared"
	}
	return "app " + r.App
}

// fileAPI is what the commands shared by secrets and configs call.
type fileAPI struct {
	// word is "secret" or "config".
	word   string
	create func(ctx context.Context, c *cluster, name string, data []byte, labels map[string]string, update bool) (fileRow, error)
	list   func(ctx context.Context, c *cluster) ([]fileRow, error)
	// get returns one, with its data when withData (configs only).
	get    func(ctx context.Context, c *cluster, name string, withData bool) (fileRow, error)
	remove func(ctx context.Context, c *cluster, name string) error
}

// newFileCommand is `berth secret` or `berth config`: create, ls,
// inspect and rm.
func newFileCommand(o *rootOptions, api fileAPI, root *cobra.Command) *cobra.Command {
	root.GroupID = groupApps
	root.AddCommand(newFileCreateCommand(o, api), newFileListCommand(o, api), newFileInspectCommand(o, api), newFileRemoveCommand(o, api))
	requireSubcommand(root)
	return root
}

func newFileCreateCommand(o *rootOptions, api fileAPI) *cobra.Command {
	var (
		labels []string
		update bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME [FILE|-] [--label KEY=VALUE]... [--update]",
		Short: fmt.Sprintf("Make a %s from a file or standard input, or a new version of one", api.word),
		Long: fmt.Sprintf(`Make a %[1]s named NAME with the data of FILE, or of standard input when
FILE is - or left out (at most 500 KiB). Apps use it by listing it in
their Compose file's top-level %[1]ss: with external: true.

With --update, an existing %[1]s gets the new data as a new version (when
the data changed), and every service that uses it rolls out to it by its
update_config.`, api.word),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			lm, err := parseLabelFlags(labels)
			if err != nil {
				return err
			}
			source := "-"
			if len(args) == 2 {
				source = args[1]
			}
			data, err := readFileData(cmd.InOrStdin(), api.word, source)
			if err != nil {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var before *fileRow
				if update {
					if r, err := api.get(ctx, c, args[0], false); err == nil {
						before = &r
					} else if status.Code(err) != codes.NotFound {
						return fmt.Errorf("update %s %s: %w", api.word, args[0], err)
					}
				}
				r, err := api.create(ctx, c, args[0], data, lm, update)
				if err != nil {
					return reportInvalid(cmd.ErrOrStderr(), fmt.Errorf("create %s %s: %w", api.word, args[0], err))
				}
				w := cmd.OutOrStdout()
				switch {
				case before == nil:
					fmt.Fprintf(w, "%s %s created (version %d)\n", api.word, r.Name, r.Version)
				case before.Version == r.Version:
					fmt.Fprintf(w, "%s %s unchanged (version %d): the data is the same\n", api.word, r.Name, r.Version)
				case len(before.Services) > 0:
					fmt.Fprintf(w, "%s %s updated to version %d; rolling out %s\n", api.word, r.Name, r.Version, strings.Join(before.Services, ", "))
				default:
					fmt.Fprintf(w, "%s %s updated to version %d\n", api.word, r.Name, r.Version)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label KEY=VALUE; repeat for several")
	cmd.Flags().BoolVar(&update, "update", false, fmt.Sprintf("replace the data of an existing %s: a new version, rolled out to the services that use it", api.word))
	return cmd
}

// readFileData reads a secret's or config's data from path, or from in
// for "-", refusing more than validation.MaxFileSize.
func readFileData(in io.Reader, word, path string) ([]byte, error) {
	from := path
	if path == "-" {
		from = "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading the %s's data: %w", word, err)
		}
		defer f.Close()
		in = f
	}
	data, err := io.ReadAll(io.LimitReader(in, validation.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the %s's data from %s: %w", word, from, err)
	}
	if err := validation.ValidateFileSize(word, len(data)); err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return data, nil
}

func newFileListCommand(o *rootOptions, api fileAPI) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   fmt.Sprintf("List the %ss with their versions and the services that use each", api.word),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				rows, err := api.list(ctx, c)
				if err != nil {
					return fmt.Errorf("list %ss: %w", api.word, err)
				}
				now := o.now()
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, c.nsHeader()+"NAME\tVERSION\tSIZE\tOWNER\tSERVICES\tUPDATED")
					for _, r := range rows {
						services := strings.Join(r.Services, ",")
						if services == "" {
							services = "-"
						}
						fmt.Fprintf(w, "%s%s\t%d\t%d\t%s\t%s\t%s\n", c.nsCell(r.Namespace), r.Name, r.Version, r.Size, r.owner(), services, ago(now, r.updated))
					}
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

func newFileInspectCommand(o *rootOptions, api fileAPI) *cobra.Command {
	var (
		out      *outputFormat
		withData bool
	)
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: fmt.Sprintf("Show a %s: its version, digest, owner and the services that use it", api.word),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				r, err := api.get(ctx, c, args[0], withData)
				if err != nil {
					return fmt.Errorf("inspect %s %s: %w", api.word, args[0], err)
				}
				w := cmd.OutOrStdout()
				if *out == formatJSON || *out == formatYAML {
					return printList(w, *out, r, nil)
				}
				printFileRow(w, r, o.now())
				return nil
			})
		},
	}
	out = addOutputFlag(cmd)
	if api.word == "config" {
		// Secrets never leave the cluster but for the tasks that use them.
		cmd.Flags().BoolVar(&withData, "data", false, "also show the config's data")
	}
	return cmd
}

func printFileRow(w io.Writer, r fileRow, now time.Time) {
	fmt.Fprintf(w, "Name:       %s\n", r.Name)
	fmt.Fprintf(w, "Namespace:  %s\n", r.Namespace)
	fmt.Fprintf(w, "Owner:      %s\n", r.owner())
	fmt.Fprintf(w, "Version:    %d\n", r.Version)
	fmt.Fprintf(w, "Digest:     %s\n", r.Digest)
	fmt.Fprintf(w, "Size:       %d bytes\n", r.Size)
	fmt.Fprintf(w, "Updated:    %s\n", ago(now, r.updated))
	if len(r.Labels) > 0 {
		var pairs []string
		for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
			pairs = append(pairs, k+"="+r.Labels[k])
		}
		fmt.Fprintf(w, "Labels:     %s\n", strings.Join(pairs, ", "))
	}
	if len(r.Services) == 0 {
		fmt.Fprintln(w, "Services:   none")
	} else {
		fmt.Fprintln(w, "Services:")
		for _, svc := range r.Services {
			fmt.Fprintf(w, "  %s\n", svc)
		}
	}
	if r.Data != nil {
		fmt.Fprintln(w, "Data:")
		fmt.Fprint(w, *r.Data)
		if !strings.HasSuffix(*r.Data, "\n") {
			fmt.Fprintln(w)
		}
	}
}

func newFileRemoveCommand(o *rootOptions, api fileAPI) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   fmt.Sprintf("Remove %ss no service uses (an app's own go with the app)", api.word),
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				var errs []error
				for _, name := range args {
					if err := api.remove(ctx, c, name); err != nil {
						errs = append(errs, fmt.Errorf("remove %s %s: %w", api.word, name, err))
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s removed\n", api.word, name)
				}
				return errors.Join(errs...)
			})
		},
	}
}

// nonNil makes an empty list print as [] in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}
