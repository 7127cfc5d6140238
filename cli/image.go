package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// importChunkSize is how much of the tar each ImportImage message carries:
// large enough to keep per-message overhead small, well under gRPC's
// default 4 MiB message limit.
const importChunkSize = 1 << 20

func newImageCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Aliases: []string{"images"},
		Short:   "Manage the images stored on the nodes",
		GroupID: groupCluster,
	}
	cmd.AddCommand(newImageImportCommand(o), newImageLsCommand(o), newImageTagsCommand(o), newImageRmCommand(o), newImagePruneCommand(o))
	requireSubcommand(cmd)
	return cmd
}

func newImageImportCommand(o *rootOptions) *cobra.Command {
	var nodes []string
	cmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Load an image tar (OCI or docker-archive) into the nodes' image stores",
		Long: `Send an image archive to the cluster, which loads it into the image store of
every ready node, or of the nodes named with --node. Use - to read the
archive from standard input. Services can then run the image without a
registry.`,
		Example: `  # Load an archive into every ready node
  berth image import app.tar

  # Load it into two nodes only, from a pipe
  cat app.tar | berth image import - --node node-1 --node node-2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var src io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("image import: %w", err)
				}
				defer f.Close()
				src = f
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				header := &berthv1.ImportImageHeader{}
				for _, n := range nodes {
					id, err := c.resolveNode(ctx, n)
					if err != nil {
						return err
					}
					header.NodeIds = append(header.NodeIds, id)
				}
				resp, err := importImage(cmd, c, header, src)
				if err != nil {
					return fmt.Errorf("image import: %w", err)
				}
				return printImportResults(cmd, resp.GetResults())
			})
		},
	}
	cmd.Flags().StringArrayVar(&nodes, "node", nil, "import into this node only (name or ID); repeat for several")
	return cmd
}

// importImage streams the header, then src in chunks, and waits for the
// server's per-node results.
func importImage(cmd *cobra.Command, c *cluster, header *berthv1.ImportImageHeader, src io.Reader) (*berthv1.ImportImageResponse, error) {
	stream, err := c.ImportImage(cmd.Context())
	if err != nil {
		return nil, err
	}
	send := func(req *berthv1.ImportImageRequest) error {
		err := stream.Send(req)
		if errors.Is(err, io.EOF) {
			// The server ended the call early; its reason comes with the
			// response.
			_, err = stream.CloseAndRecv()
			if err == nil {
				err = errors.New("the server stopped reading the image before its end")
			}
		}
		return err
	}
	if err := send(&berthv1.ImportImageRequest{Part: &berthv1.ImportImageRequest_Header{Header: header}}); err != nil {
		return nil, err
	}
	for {
		// A fresh buffer per chunk: gRPC does not allow changing a message
		// after Send.
		buf := make([]byte, importChunkSize)
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if err := send(&berthv1.ImportImageRequest{Part: &berthv1.ImportImageRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return nil, err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			// Returning cancels the call, so the server drops the partial tar.
			return nil, fmt.Errorf("read image archive: %w", rerr)
		}
	}
	return stream.CloseAndRecv()
}

func printImportResults(cmd *cobra.Command, results []*berthv1.NodeImportResult) error {
	if len(results) == 0 {
		return errors.New("no node received the image: are any nodes ready? see `berth node ls`")
	}
	slices.SortFunc(results, func(a, b *berthv1.NodeImportResult) int { return cmp.Compare(a.GetNodeName(), b.GetNodeName()) })
	failed := 0
	for _, r := range results {
		node := cmp.Or(r.GetNodeName(), shortID(r.GetNodeId()))
		if r.GetError() != "" {
			failed++
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: error: %s\n", node, r.GetError())
			continue
		}
		for _, img := range r.GetImages() {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: imported %s (%s)\n", node, img.GetName(), shortDigest(img.GetDigest()))
		}
	}
	if failed > 0 {
		return fmt.Errorf("image import failed on %d of %d nodes", failed, len(results))
	}
	return nil
}

// imageRow is one image on one node as "berth image ls" shows it.
type imageRow struct {
	Node      string `json:"node"`
	NodeID    string `json:"nodeId"`
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	CreatedAt string `json:"createdAt,omitempty"`
}

// quietKey names the image as "berth image rm" takes it.
func (r imageRow) quietKey() string { return r.Name }

// imageFilterKeys are the --filter keys of "berth image ls".
var imageFilterKeys = filterKeys[imageRow]{
	"name":   func(r imageRow) []string { return []string{r.Name} },
	"node":   func(r imageRow) []string { return []string{r.Node, r.NodeID} },
	"digest": func(r imageRow) []string { return []string{r.Digest} },
}

func newImageLsCommand(o *rootOptions) *cobra.Command {
	var (
		node string
		out  *outputFormat
		flt  *filters
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images stored on each node",
		Example: `  berth image ls
  berth image ls --node node-1 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.ListImagesRequest{}
				var err error
				if req.NodeId, err = c.nodeFilter(ctx, node); err != nil {
					return err
				}
				resp, err := c.ListImages(ctx, req)
				if err != nil {
					return fmt.Errorf("list images: %w", err)
				}
				rows := []imageRow{}
				for _, n := range resp.GetNodes() {
					name := cmp.Or(n.GetNodeName(), shortID(n.GetNodeId()))
					if n.GetError() != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: node %s: %s\n", name, n.GetError())
					}
					for _, img := range n.GetImages() {
						rows = append(rows, imageRow{Node: name, NodeID: n.GetNodeId(), Name: img.GetName(), Digest: img.GetDigest(), Size: img.GetSize(), CreatedAt: rfc3339(img.GetCreatedAt())})
					}
				}
				slices.SortFunc(rows, func(a, b imageRow) int { return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Name, b.Name)) })
				rows = filterRows(rows, flt, imageFilterKeys)
				wide := *out == formatWide
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					created := ""
					if wide {
						created = "\tCREATED"
					}
					fmt.Fprintln(w, "NODE\tIMAGE\tDIGEST\tSIZE"+created)
					for _, r := range rows {
						digest := shortDigest(r.Digest)
						if wide {
							digest, created = r.Digest, "\t"+cmp.Or(r.CreatedAt, "-")
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s%s\n", r.Node, r.Name, digest, bytesColumn(r.Size), created)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "list the images of this node only (name or ID)")
	flt = addFilterFlag(cmd, imageFilterKeys)
	out = addOutputFlag(cmd)
	return cmd
}
