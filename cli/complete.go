package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
)

// completionTimeout bounds the calls a completion makes to the cluster: a
// shell waiting on Tab longer than this is worse than no answer.
const completionTimeout = 2 * time.Second

// completer lists the candidates for an argument of a command, from the
// cluster.
type completer func(ctx context.Context, c *cluster, toComplete string) ([]string, error)

// registerCompletions gives the commands under root that name cluster
// objects a completion of their arguments, and the flags that do a
// completion of their values. A command that brings its own keeps it.
func registerCompletions(root *cobra.Command, o *rootOptions) {
	appService := o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeAppServices(false))
	service := o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeAppServices(true))
	byPath := map[string]cobra.CompletionFunc{
		"ps":               appService,
		"events":           appService,
		"logs":             appService,
		"rebalance":        appService,
		"describe":         service,
		"describe service": service,
		"describe task":    o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeTasks),
		"describe node":    o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeNodes),
		"get apps":         o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeApps),
		"get services":     appService,
		"get nodes":        o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeNodes),
		"node ls":          o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeNodes),
		"node drain":       o.complete(-1, cobra.ShellCompDirectiveNoFileComp, completeNodes),
		"node pause":       o.complete(-1, cobra.ShellCompDirectiveNoFileComp, completeNodes),
		"node activate":    o.complete(-1, cobra.ShellCompDirectiveNoFileComp, completeNodes),
		"node label":       o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeNodes),
		"delete":           o.complete(1, cobra.ShellCompDirectiveNoFileComp, completeApps),
		"rollout status":   service,
		"rollout history":  service,
		"rollout undo":     service,
		// "web=" is not complete: the user types the count.
		"scale": o.complete(-1, cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveNoSpace, completeAppServices(true)),
	}
	nodeFlag := o.complete(-1, cobra.ShellCompDirectiveNoFileComp, completeNodes)
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), root.Name()), " ")
		if fn, ok := byPath[path]; ok && c.ValidArgsFunction == nil && len(c.ValidArgs) == 0 {
			c.ValidArgsFunction = fn
		}
		if c.Flags().Lookup("node") != nil {
			// An error means the command registered its own: keep it.
			_ = c.RegisterFlagCompletionFunc("node", nodeFlag)
		}
		if f := c.Flags().Lookup("output"); f != nil && f.Value.Type() == "format" {
			_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
				[]string{string(formatTable), string(formatJSON), string(formatYAML)}, cobra.ShellCompDirectiveNoFileComp))
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	_ = root.RegisterFlagCompletionFunc("context", o.completeContexts)
}

// complete makes a completion function that asks the cluster with fn for
// the first max arguments (all of them when max < 0). Any failure (no
// config, no server, a slow one) completes nothing and prints nothing.
func (o *rootOptions) complete(max int, directive cobra.ShellCompDirective, fn completer) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if max >= 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		cmd.SetContext(ctx)
		c, err := o.connect(cmd)
		if err != nil {
			return completionError(err)
		}
		defer c.Close()
		names, err := fn(ctx, c, toComplete)
		if err != nil {
			return completionError(err)
		}
		var out []string
		for _, n := range names {
			value, _, _ := strings.Cut(n, "\t")
			if strings.HasPrefix(value, toComplete) && !slices.Contains(args, value) {
				out = append(out, n)
			}
		}
		return out, directive
	}
}

// completeApps lists the apps of the namespace.
func completeApps(ctx context.Context, c *cluster, _ string) ([]string, error) {
	resp, err := c.ListApps(ctx, &berthv1.ListAppsRequest{Namespace: c.namespace})
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	var names []string
	for _, a := range resp.GetApps() {
		names = append(names, a.GetName())
	}
	return names, nil
}

// completeAppServices lists APP/SERVICE for every service of the
// namespace, and each APP too unless servicesOnly; one call covers both.
func completeAppServices(servicesOnly bool) completer {
	return func(ctx context.Context, c *cluster, _ string) ([]string, error) {
		resp, err := c.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: c.namespace})
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		var names []string
		for _, s := range resp.GetServices() {
			svc := s.GetService()
			if !servicesOnly && !slices.Contains(names, svc.GetApp()) {
				names = append(names, svc.GetApp())
			}
			names = append(names, svc.GetApp()+"/"+svc.GetName())
		}
		slices.Sort(names)
		return names, nil
	}
}

// completeNodes lists node names.
func completeNodes(ctx context.Context, c *cluster, _ string) ([]string, error) {
	resp, err := c.ListNodes(ctx, &berthv1.ListNodesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var names []string
	for _, n := range resp.GetNodes() {
		names = append(names, n.GetName())
	}
	slices.Sort(names)
	return names, nil
}

// completeTasks lists the IDs of the namespace's tasks, each described by
// its service, slot and state.
func completeTasks(ctx context.Context, c *cluster, _ string) ([]string, error) {
	resp, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{Namespace: c.namespace, All: true})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var ids []string
	for _, t := range resp.GetTasks() {
		desc := fmt.Sprintf("%s/%s.%d %s", t.GetApp(), t.GetService(), t.GetSlot(), taskStateWord(t.GetStatus().GetState()))
		ids = append(ids, cobra.CompletionWithDesc(t.GetMeta().GetId(), desc))
	}
	slices.Sort(ids)
	return ids, nil
}

// completeContexts lists the contexts of the config file; it needs no
// cluster.
func (o *rootOptions) completeContexts(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	f, err := clientconfig.ReadFile(o.configPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	if err != nil {
		return completionError(err)
	}
	var names []string
	for _, n := range f.Names() {
		if !slices.Contains(args, n) {
			names = append(names, n)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
