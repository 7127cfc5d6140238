package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newImageRmCommand(o *rootOptions) *cobra.Command {
	var (
		node  string
		force bool
	)
	cmd := &cobra.Command{
		Use:     "rm IMAGE... [--node NODE] [--force]",
		Aliases: []string{"remove"},
		Short:   "Remove images from the nodes' image stores",
		Long: `Remove images from the image store of every ready node, or of one with
--node. An image that a task's container uses is refused, naming the
task; --force removes it when those containers have stopped, but an image
a running task uses is kept all the same. Prints what each node removed
and the space freed.`,
		Example: `  berth image rm registry.example.com/app:1
  berth image rm web:1 web:2 --node node-1
  berth image ls -q --filter node=node-1 | xargs berth image rm --node node-1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.RemoveImageRequest{Images: args, Force: force}
				var err error
				if req.NodeId, err = c.nodeFilter(ctx, node); err != nil {
					return err
				}
				resp, err := c.RemoveImage(ctx, req)
				if err != nil {
					return fmt.Errorf("image rm: %w", err)
				}
				return reportRemoval(cmd.OutOrStdout(), cmd.ErrOrStderr(), resp, args, force)
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "remove from this node only (name or ID)")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "also remove images that stopped containers of tasks use (never one a running task uses)")
	return cmd
}

func newImagePruneCommand(o *rootOptions) *cobra.Command {
	var (
		node string
		all  bool
	)
	cmd := &cobra.Command{
		Use:   "prune [--all] [--node NODE]",
		Short: "Remove the images no container uses",
		Long: `Remove from every ready node's image store (or one node's, with --node) the
images that no container uses: the dangling ones, known only by digest
(name@sha256:...), or with --all every unused image. Images of stopped
containers of tasks stay. Prints what each node removed and the space
freed.`,
		Example: `  berth image prune
  berth image prune --all --node node-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.PruneImagesRequest{All: all}
				var err error
				if req.NodeId, err = c.nodeFilter(ctx, node); err != nil {
					return err
				}
				resp, err := c.PruneImages(ctx, req)
				if err != nil {
					return fmt.Errorf("image prune: %w", err)
				}
				return reportRemoval(cmd.OutOrStdout(), cmd.ErrOrStderr(), resp, nil, false)
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "prune this node only (name or ID)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every unused image, not only the dangling ones")
	return cmd
}

// reportRemoval prints what each node removed and kept, and the space
// freed; it fails when a node failed, when an image was kept, or when an
// image asked for (asked) is on no node.
func reportRemoval(out, stderr io.Writer, resp *berthv1.RemoveImagesResponse, asked []string, force bool) error {
	var freed int64
	problems := 0
	found := map[string]bool{}
	for _, n := range resp.GetNodes() {
		name := n.GetNodeName()
		if n.GetError() != "" {
			fmt.Fprintf(stderr, "berth: node %s: %s\n", name, n.GetError())
			problems++
		}
		for _, im := range n.GetRemoved() {
			fmt.Fprintf(out, "%s: removed %s (%s)\n", name, im.GetName(), cmpBytes(im.GetSize()))
			found[im.GetName()] = true
			freed += im.GetSize()
		}
		for _, k := range n.GetKept() {
			found[k.GetImage()] = true
			why := "in use by " + plural(len(k.GetTasks()), "task") + " " + strings.Join(k.GetTasks(), ", ")
			switch {
			case k.GetRunning() && force:
				why += ", which runs: kept even with --force; stop or update the service first"
			case k.GetRunning():
				why += ", which runs; stop or update the service first"
			default:
				why += "; --force removes it, since no container of it runs"
			}
			fmt.Fprintf(stderr, "berth: %s: kept %s: %s\n", name, k.GetImage(), why)
			problems++
		}
	}
	if len(asked) > 0 {
		missing := map[string]int{}
		for _, n := range resp.GetNodes() {
			for _, m := range n.GetMissing() {
				missing[m]++
			}
		}
		for _, m := range slices.Sorted(maps.Keys(missing)) {
			if !found[m] && missing[m] == len(resp.GetNodes()) {
				fmt.Fprintf(stderr, "berth: no node holds %s; see `berth image ls`\n", m)
				problems++
			}
		}
	}
	fmt.Fprintf(out, "Total reclaimed space: %s\n", cmpBytes(freed))
	if problems > 0 {
		return errReported
	}
	return nil
}

// cmpBytes is bytesColumn with 0B for nothing.
func cmpBytes(n int64) string {
	if n <= 0 {
		return "0B"
	}
	return bytesColumn(n)
}
