package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
)

func newPullCommand(o *rootOptions) *cobra.Command {
	var nodes []string
	cmd := &cobra.Command{
		Use:   "pull IMAGE [--node NODE]...",
		Short: "Pull an image onto the nodes ahead of a deploy",
		Long: `Pull an image onto every ready node, or onto the nodes named with --node.
Each node fetches it from a node that already holds it when there is one,
else from its registry with the credential stored by "berth login".
One progress line is shown per node.`,
		Example: `  berth pull registry.example.com/web:1.2
  berth pull registry.example.com/web:1.2 --node node-1 --node node-2`,
		Args:    cobra.ExactArgs(1),
		GroupID: groupApps,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.PullImageRequest{Image: args[0]}
				for _, n := range nodes {
					id, err := c.resolveNode(ctx, n)
					if err != nil {
						return err
					}
					req.NodeIds = append(req.NodeIds, id)
				}
				stream, err := c.PullImage(ctx, req)
				_, err = showImageProgress(cmd, "pull", args[0], stream, err)
				return err
			})
		},
	}
	cmd.Flags().StringArrayVar(&nodes, "node", nil, "pull onto this node only (name or ID); repeat for several")
	return cmd
}

func newPushCommand(o *rootOptions) *cobra.Command {
	var node, sign string
	cmd := &cobra.Command{
		Use:   "push IMAGE [--node NODE] [--sign KEY]",
		Short: "Push an image from a node to its registry",
		Long: `Push an image from the node named with --node, or from a ready node that
holds it, to the registry its name says, with the credential stored by
"berth login".`,
		Example: `  berth push registry.example.com/web:1.2
  berth push 127.0.0.1:5000/web:dev --node build-1`,
		Args:    cobra.ExactArgs(1),
		GroupID: groupApps,
		RunE: func(cmd *cobra.Command, args []string) error {
			var sk signingKey
			if sign != "" {
				var err error
				if sk, err = readSigningKey(sign); err != nil {
					return fmt.Errorf("push %s: %w", args[0], err)
				}
				defer sk.forget()
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				return c.pushAndSign(ctx, cmd, args[0], node, sign, sk)
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "push from this node (name or ID)")
	cmd.Flags().StringVar(&sign, "sign", "", "sign the pushed digest in cosign's format with this cluster key (`berth key ls`) or cosign key file")
	return cmd
}

// pushAndSign pushes image from node (any that holds it when empty) and,
// with key (named so in messages, read into sk), signs the digest the
// registry took.
func (c *cluster) pushAndSign(ctx context.Context, cmd *cobra.Command, image, node, key string, sk signingKey) error {
	stream, err := c.PushImage(ctx, &berthv1.PushImageRequest{Image: image, Node: node})
	digest, err := showImageProgress(cmd, "push", image, stream, err)
	if err != nil || key == "" {
		return err
	}
	if digest == "" {
		return fmt.Errorf("push %s: the node reported no digest, so nothing was signed; sign it with `berth sign %s --key %s`", image, image, key)
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		return err
	}
	resp, err := c.SignImage(ctx, sk.request(c.namespace, ref.Repository()+"@"+digest))
	if err != nil {
		return fmt.Errorf("pushed %s@%s, but signing it: %w", ref.Repository(), digest, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "signed %s@%s with key %s; signature stored at %s\n", resp.GetImage(), resp.GetDigest(), key, resp.GetSignature())
	return nil
}

// showImageProgress prints a pull's or push's progress until the stream
// ends, and returns the digest the nodes reported with its error.
func showImageProgress(cmd *cobra.Command, verb, image string, stream grpc.ServerStreamingClient[berthv1.ImageProgress], err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", verb, image, err)
	}
	digest := ""
	board := newProgressBoard(cmd.OutOrStdout())
	failed := 0
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", verb, image, err)
		}
		if p.GetDone() && p.GetError() != "" {
			failed++
		}
		if p.GetDone() && p.GetError() == "" && p.GetDigest() != "" {
			digest = p.GetDigest()
		}
		board.update(p)
	}
	if board.count() == 0 {
		return "", fmt.Errorf("%s %s: no node reported anything: are any nodes ready? see `berth node ls`", verb, image)
	}
	if failed > 0 {
		return "", fmt.Errorf("%s %s failed on %d of %d nodes", verb, image, failed, board.count())
	}
	return digest, nil
}

// progressBoard shows one line per node. On a terminal the lines are
// redrawn in place; elsewhere a line is printed when a node's status
// changes, so logs stay short.
type progressBoard struct {
	w     io.Writer
	tty   bool
	order []string
	lines map[string]string
	last  map[string]string // the status last printed, off a terminal
	drawn int
}

func newProgressBoard(w io.Writer) *progressBoard {
	return &progressBoard{w: w, tty: terminal(w), lines: map[string]string{}, last: map[string]string{}}
}

func (b *progressBoard) count() int { return len(b.order) }

func (b *progressBoard) update(p *berthv1.ImageProgress) {
	node := cmp.Or(p.GetNodeName(), shortID(p.GetNodeId()))
	if _, ok := b.lines[node]; !ok {
		b.order = append(b.order, node)
	}
	line := progressLine(node, p)
	b.lines[node] = line
	if !b.tty {
		key := p.GetStatus()
		if p.GetDone() {
			key = "done"
		}
		if b.last[node] != key {
			b.last[node] = key
			fmt.Fprintln(b.w, line)
		}
		return
	}
	if b.drawn > 0 {
		fmt.Fprintf(b.w, "\x1b[%dA", b.drawn)
	}
	for _, n := range b.order {
		fmt.Fprintf(b.w, "\x1b[2K%s\n", b.lines[n])
	}
	b.drawn = len(b.order)
}

// progressLine is a node's line: "alpha: pulling from registry 3MiB/50MiB".
func progressLine(node string, p *berthv1.ImageProgress) string {
	var sb strings.Builder
	sb.WriteString(node + ": ")
	switch {
	case p.GetDone() && p.GetError() != "":
		sb.WriteString("error: " + p.GetError())
		return sb.String()
	case p.GetDone():
		sb.WriteString("done")
		if d := p.GetDigest(); d != "" {
			sb.WriteString(" " + shortDigest(d))
		}
	default:
		sb.WriteString(cmp.Or(p.GetStatus(), "working"))
	}
	if p.GetTotalBytes() > 0 {
		fmt.Fprintf(&sb, " %s/%s", cmp.Or(bytesColumn(p.GetDoneBytes()), "0B"), bytesColumn(p.GetTotalBytes()))
	} else if p.GetDoneBytes() > 0 {
		sb.WriteString(" " + bytesColumn(p.GetDoneBytes()))
	}
	return sb.String()
}
