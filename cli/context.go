package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/api/clientconfig"
)

// newContextCommand is "berth context": the clusters of the config file
// and which one commands use.
func newContextCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "context",
		Aliases: []string{"ctx"},
		Short:   "List, add and switch between clusters (contexts)",
		Long: `Manage the contexts of the config file: the clusters the other commands can
talk to, each with its server address and credentials.

The cluster that "berth server" or "berth dev" wrote into the config file is
the context "default"; "berth context import" adds the config of another
cluster under a name. One context is current; --context NAME (or
$BERTH_CONTEXT) picks another for one command. Starting "berth server" or
"berth dev" again rewrites the default context and makes it current, and
keeps the others.`,
		Example: `  # Add the admin config of another cluster, copied from its server
  berth context import prod ./prod-config

  # Use it from now on, then check
  berth context use prod
  berth context show

  # One command against the local cluster
  berth ps --context default`,
		GroupID: groupCluster,
	}
	cmd.AddCommand(
		newContextLsCommand(o),
		newContextShowCommand(o),
		newContextUseCommand(o),
		newContextImportCommand(o),
		newContextRmCommand(o),
	)
	requireSubcommand(cmd)
	return cmd
}

// contextRow is one context as "berth context ls" shows it.
type contextRow struct {
	Name      string `json:"name"`
	Current   bool   `json:"current"`
	Server    string `json:"server"`
	Namespace string `json:"namespace"`
}

func newContextLsCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the contexts; * marks the one in use",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := clientconfig.ReadFile(o.configPath)
			if err != nil {
				return err
			}
			using := o.usingContext(f)
			rows := []contextRow{}
			for _, name := range f.Names() {
				_, c, err := f.Context(name)
				if err != nil {
					return err
				}
				rows = append(rows, contextRow{Name: name, Current: name == using, Server: c.Server, Namespace: c.Namespace})
			}
			return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
				fmt.Fprintln(w, "CURRENT\tNAME\tSERVER\tNAMESPACE")
				for _, r := range rows {
					mark := ""
					if r.Current {
						mark = "*"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", mark, r.Name, r.Server, r.Namespace)
				}
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

// usingContext is the name of the context commands use with f: --context,
// $BERTH_CONTEXT or the file's current one.
func (o *rootOptions) usingContext(f *clientconfig.File) string {
	if name := o.contextName(); name != "" {
		return name
	}
	return f.CurrentName()
}

func newContextShowCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the name of the context in use and its server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := clientconfig.ReadFile(o.configPath)
			if err != nil {
				return err
			}
			name, c, err := f.Context(o.usingContext(f))
			if err != nil {
				return fmt.Errorf("config file %s: %w", o.configPath, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", name, c.Server)
			return nil
		},
	}
}

func newContextUseCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:               "use NAME",
		Short:             "Make a context the current one",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			var server string
			err := o.editConfig(func(f *clientconfig.File) error {
				server = serverOf(f, args[0])
				return f.Use(args[0])
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Using context %q (%s)\n", args[0], server)
			return nil
		},
	}
}

func serverOf(f *clientconfig.File, name string) string {
	if _, c, err := f.Context(name); err == nil {
		return c.Server
	}
	return ""
}

func newContextImportCommand(o *rootOptions) *cobra.Command {
	var force, use bool
	cmd := &cobra.Command{
		Use:     "import NAME FILE",
		Aliases: []string{"add"},
		Short:   "Add another cluster's config file as a context",
		Long: `Add the cluster of another config file (the one "berth server" wrote on that
cluster's machine) to this config file under NAME. The file's current
context is taken; the file itself is not needed afterwards.`,
		Example: `  berth context import prod ./prod-config
  berth context import prod ./prod-config --force --use`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return nil, cobra.ShellCompDirectiveDefault // FILE: let the shell complete paths
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path := args[0], args[1]
			if err := clientconfig.CheckContextName(name); err != nil {
				return usageErrorf("%w", err)
			}
			c, err := clientconfig.Load(path)
			if err != nil {
				return err
			}
			err = o.editConfig(func(f *clientconfig.File) error {
				if err := f.Add(name, c, force); err != nil {
					return err
				}
				if use {
					return f.Use(name)
				}
				return nil
			})
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("Added context %q (%s)", name, c.Server)
			if use {
				msg += ", now in use"
			} else {
				msg += fmt.Sprintf("; use it with `berth context use %s` or --context %s", name, name)
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace a context of the same name")
	cmd.Flags().BoolVar(&use, "use", false, "make it the current context too")
	return cmd
}

func newContextRmCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:               "rm NAME...",
		Aliases:           []string{"remove"},
		Short:             "Remove contexts (the default one stays)",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: o.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			err := o.editConfig(func(f *clientconfig.File) error {
				for _, name := range args {
					if err := f.Remove(name); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, name := range args {
				fmt.Fprintf(cmd.OutOrStdout(), "Removed context %q\n", name)
			}
			return nil
		},
	}
}

// editConfig reads the config file (an absent one reads as empty), lets
// edit change it, and writes it back unless edit fails.
func (o *rootOptions) editConfig(edit func(f *clientconfig.File) error) error {
	f, err := clientconfig.ReadFile(o.configPath)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = &clientconfig.File{}, nil
	}
	if err != nil {
		return err
	}
	if err := edit(f); err != nil {
		return err
	}
	return clientconfig.WriteFile(o.configPath, f)
}
