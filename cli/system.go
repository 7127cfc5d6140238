package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newSystemCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "system",
		Short:   "See what the cluster's nodes hold",
		GroupID: groupCluster,
	}
	cmd.AddCommand(newSystemDfCommand(o))
	requireSubcommand(cmd)
	return cmd
}

// diskRow is one node's disk usage as "berth system df" shows it.
type diskRow struct {
	Node                   string `json:"node"`
	NodeID                 string `json:"nodeId"`
	Images                 int32  `json:"images"`
	ImagesBytes            int64  `json:"imagesBytes"`
	ImagesReclaimableBytes int64  `json:"imagesReclaimableBytes"`
	Containers             int32  `json:"containers"`
	ContainersBytes        int64  `json:"containersBytes"`
	Volumes                int32  `json:"volumes"`
	VolumesBytes           int64  `json:"volumesBytes"`
	// BuildCache is "running" or "not running" (BuildKit starts with a
	// node's first build), or why it could not be measured.
	BuildCache                 string `json:"buildCache"`
	BuildCacheRecords          int32  `json:"buildCacheRecords"`
	BuildCacheBytes            int64  `json:"buildCacheBytes"`
	BuildCacheReclaimableBytes int64  `json:"buildCacheReclaimableBytes"`
	Error                      string `json:"error,omitempty"`
}

func newSystemDfCommand(o *rootOptions) *cobra.Command {
	var (
		node string
		out  *outputFormat
	)
	cmd := &cobra.Command{
		Use:   "df [--node NODE]",
		Short: "Show the disk each node's images, containers, volumes and build cache use",
		Long: `Show, for each ready node (or one, with --node) and in total, what Berth
keeps on its disk: images (how many, their size, and how much a prune
--all could reclaim), containers (how many, and the size of their writable
layers), volumes (how many, their size) and BuildKit's build cache ("not
running" on a node that has not built since its agent started).`,
		Example: `  berth system df
  berth system df --node node-1 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.DiskUsageRequest{}
				var err error
				if req.NodeId, err = c.nodeFilter(ctx, node); err != nil {
					return err
				}
				resp, err := c.DiskUsage(ctx, req)
				if err != nil {
					return fmt.Errorf("system df: %w", err)
				}
				rows := diskRows(resp)
				for _, r := range rows {
					if r.Error != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: node %s: %s\n", r.Node, r.Error)
					}
				}
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) { diskTable(w, rows) })
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "measure this node only (name or ID)")
	out = addOutputFlag(cmd)
	return cmd
}

// diskRows turns the answer into rows, in the server's order.
func diskRows(resp *berthv1.DiskUsageResponse) []diskRow {
	rows := []diskRow{}
	for _, n := range resp.GetNodes() {
		bc := "not running"
		switch {
		case n.GetBuildCacheError() != "":
			bc = "error: " + n.GetBuildCacheError()
		case n.GetBuildCacheRunning():
			bc = "running"
		}
		rows = append(rows, diskRow{
			Node: n.GetNodeName(), NodeID: n.GetNodeId(),
			Images: n.GetImages(), ImagesBytes: n.GetImagesBytes(), ImagesReclaimableBytes: n.GetImagesReclaimableBytes(),
			Containers: n.GetContainers(), ContainersBytes: n.GetContainersBytes(),
			Volumes: n.GetVolumes(), VolumesBytes: n.GetVolumesBytes(),
			BuildCache: bc, BuildCacheRecords: n.GetBuildCacheRecords(),
			BuildCacheBytes: n.GetBuildCacheBytes(), BuildCacheReclaimableBytes: n.GetBuildCacheReclaimableBytes(),
			Error: n.GetError(),
		})
	}
	return rows
}

// diskTable writes a node a line and the total.
func diskTable(w io.Writer, rows []diskRow) {
	fmt.Fprintln(w, "NODE\tIMAGES\tIMAGES SIZE\tRECLAIMABLE\tCONTAINERS\tCONTAINERS SIZE\tVOLUMES\tVOLUMES SIZE\tBUILD CACHE")
	var total diskRow
	running := 0
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t-\t-\tunreachable\n", r.Node)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.Node, r.Images, cmpBytes(r.ImagesBytes), cmpBytes(r.ImagesReclaimableBytes),
			r.Containers, cmpBytes(r.ContainersBytes), r.Volumes, cmpBytes(r.VolumesBytes), buildCacheCell(r))
		total.Images += r.Images
		total.ImagesBytes += r.ImagesBytes
		total.ImagesReclaimableBytes += r.ImagesReclaimableBytes
		total.Containers += r.Containers
		total.ContainersBytes += r.ContainersBytes
		total.Volumes += r.Volumes
		total.VolumesBytes += r.VolumesBytes
		total.BuildCacheBytes += r.BuildCacheBytes
		if r.BuildCache == "running" {
			running++
		}
	}
	bc := "not running"
	if running > 0 {
		bc = cmpBytes(total.BuildCacheBytes)
	}
	fmt.Fprintf(w, "TOTAL\t%d\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", total.Images, cmpBytes(total.ImagesBytes), cmpBytes(total.ImagesReclaimableBytes),
		total.Containers, cmpBytes(total.ContainersBytes), total.Volumes, cmpBytes(total.VolumesBytes), bc)
}

// buildCacheCell is a node's BUILD CACHE cell: its size with the records,
// or why there is none.
func buildCacheCell(r diskRow) string {
	if r.BuildCache != "running" {
		return r.BuildCache
	}
	return fmt.Sprintf("%s (%s, %s reclaimable)", cmpBytes(r.BuildCacheBytes), plural(int(r.BuildCacheRecords), "record"), cmpBytes(r.BuildCacheReclaimableBytes))
}
