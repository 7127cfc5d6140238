package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/gitcontext"
	"github.com/berthproject/berth/api/imageref"
)

// buildChunkSize is how much of the context tar each BuildRequest carries.
const buildChunkSize = 64 << 10

// buildRequest is one image to build, as `berth build` and a Compose
// service's build: ask for it.
type buildRequest struct {
	// contextDir is the directory sent as the build context.
	contextDir string
	// gitContext, when set instead, is a git URL the node's BuildKit
	// fetches itself (gitcontext.Is); nothing is sent then.
	gitContext string
	// dockerfile is the Dockerfile's path as the user gave it (relative to
	// the working directory); empty means contextDir/Dockerfile. It is
	// ignored when dockerfileContent is set.
	dockerfile        string
	dockerfileContent []byte
	tags              []string
	args              map[string]string
	target            string
	noCache           bool
	// node is the node to build on (name or ID); empty lets the server
	// pick.
	node string
	// secrets are BuildKit's secret mounts, with their data.
	secrets []*berthv1.BuildSecret
}

// header checks the request against the files and returns the header to
// send, with keep, the Dockerfile's path in the context ("" when it is
// sent as content).
func (r buildRequest) header() (header *berthv1.BuildHeader, keep string, err error) {
	if r.gitContext != "" {
		return r.gitHeader()
	}
	fi, err := os.Stat(r.contextDir)
	if err != nil {
		return nil, "", fmt.Errorf("build context: %w", err)
	}
	if !fi.IsDir() {
		return nil, "", fmt.Errorf("build context %s is not a directory: give the directory holding the files the Dockerfile copies", r.contextDir)
	}
	if err := r.checkTags(); err != nil {
		return nil, "", err
	}
	header = &berthv1.BuildHeader{
		Tags:      r.tags,
		BuildArgs: r.args,
		Target:    r.target,
		NoCache:   r.noCache,
		Node:      r.node,
		Secrets:   r.secrets,
	}
	if r.dockerfileContent != nil {
		header.DockerfileContent = r.dockerfileContent
		return header, "", nil
	}
	dockerfile := cmp.Or(r.dockerfile, filepath.Join(r.contextDir, "Dockerfile"))
	if fi, err := os.Stat(dockerfile); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("no Dockerfile at %s: write one there, or name it with -f", dockerfile)
		}
		return nil, "", fmt.Errorf("dockerfile: %w", err)
	} else if fi.IsDir() {
		return nil, "", fmt.Errorf("dockerfile %s is a directory: name the file with -f", dockerfile)
	}
	rel, inside, err := dockerfileIn(r.contextDir, dockerfile)
	if err != nil {
		return nil, "", fmt.Errorf("dockerfile: %w", err)
	}
	if inside {
		header.Dockerfile = rel
		return header, rel, nil
	}
	// A Dockerfile outside the context is not part of the tar: send it
	// whole.
	if header.DockerfileContent, err = os.ReadFile(dockerfile); err != nil {
		return nil, "", fmt.Errorf("dockerfile: %w", err)
	}
	return header, "", nil
}

// gitHeader is the header of a build from a git URL: the Dockerfile is a
// path in the repository (the context's directory), never sent.
func (r buildRequest) gitHeader() (*berthv1.BuildHeader, string, error) {
	if err := gitcontext.Check(r.gitContext); err != nil {
		return nil, "", err
	}
	if r.dockerfileContent != nil {
		return nil, "", usageErrorf("-f -: a git build context reads its Dockerfile from the repository; name its path there with -f, relative to the context's directory")
	}
	if err := r.checkTags(); err != nil {
		return nil, "", err
	}
	if r.dockerfile != "" && !filepath.IsLocal(filepath.FromSlash(r.dockerfile)) {
		return nil, "", usageErrorf("-f %s: with a git build context, -f is the Dockerfile's path in the repository's context directory, like docker/Dockerfile", r.dockerfile)
	}
	return &berthv1.BuildHeader{
		Tags: r.tags, BuildArgs: r.args, Target: r.target, NoCache: r.noCache, Node: r.node,
		Secrets: r.secrets, Dockerfile: filepath.ToSlash(r.dockerfile), GitContext: r.gitContext,
	}, "", nil
}

// checkTags checks that every tag is an image name.
func (r buildRequest) checkTags() error {
	for _, tag := range r.tags {
		if _, err := imageref.Parse(tag); err != nil {
			return usageErrorf("tag %q is not a valid image name: %v; use NAME[:TAG], like web:1", tag, err)
		}
	}
	return nil
}

// build builds r on the cluster, drawing BuildKit's progress on progress
// in mode, and returns the result. The context is sent as a tar written
// while it is sent, never whole in memory.
func (c *cluster) build(ctx context.Context, r buildRequest, progress io.Writer, mode progressui.DisplayMode) (*berthv1.BuildResult, error) {
	header, keep, err := r.header()
	if err != nil {
		return nil, err
	}
	display, err := startProgress(ctx, progress, mode, strings.Join(r.tags, ", "))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Build(ctx)
	if err != nil {
		display.Close()
		return nil, err
	}

	pr, pw := io.Pipe()
	var (
		wg      sync.WaitGroup
		sendErr error // the context's own failure (reading a file), if any
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if r.gitContext != "" {
			// The node fetches the repository: the context is empty.
			pw.Close()
			return
		}
		pw.CloseWithError(writeContext(pw, r.contextDir, keep))
	}()
	go func() {
		defer wg.Done()
		if err := sendContext(stream, header, pr); err != nil {
			sendErr = err
			// Ends the call: the server must not build half a context.
			cancel()
		}
		// Stops the tar writer if the sending stopped first.
		pr.CloseWithError(errors.New("build context no longer sent"))
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	var result *berthv1.BuildResult
	var recvErr error
	for {
		ev, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) && recvErr == nil {
				recvErr = err
			}
			break
		}
		switch e := ev.GetEvent().(type) {
		case *berthv1.BuildEvent_Status:
			ss, err := decodeStatus(e.Status)
			if err != nil {
				recvErr = err
				cancel()
				continue
			}
			display.show(ss)
		case *berthv1.BuildEvent_Result:
			result = e.Result
		}
	}
	if err := display.Close(); err != nil && recvErr == nil {
		recvErr = err
	}
	cancel()
	wg.Wait()
	switch {
	case sendErr != nil:
		return nil, sendErr
	case recvErr != nil:
		return nil, recvErr
	case result == nil:
		return nil, errors.New("the build ended without a result; see the server's log")
	}
	return result, nil
}

// sendContext sends the header, then the tar read from src in chunks, and
// closes the sending side. It returns only a failure of src: a failed Send
// means the server ended the call, and its reason comes with Recv.
func sendContext(stream berthv1.ClusterService_BuildClient, header *berthv1.BuildHeader, src io.Reader) error {
	if err := stream.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_Header{Header: header}}); err != nil {
		return nil
	}
	for {
		// A fresh buffer per chunk: gRPC does not allow changing a message
		// after Send.
		buf := make([]byte, buildChunkSize)
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if err := stream.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_ContextChunk{ContextChunk: buf[:n]}}); err != nil {
				return nil
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return stream.CloseSend()
		}
		if err != nil {
			return err
		}
	}
}

// builtLine says what a build made and where: "built web:1@sha256:... on
// node alpha".
func builtLine(res *berthv1.BuildResult) string {
	what := res.GetDigest()
	if res.GetImage() != "" {
		what = res.GetImage() + "@" + res.GetDigest()
	}
	line := fmt.Sprintf("built %s on node %s", what, cmp.Or(res.GetNodeName(), shortID(res.GetNodeId())))
	switch {
	case res.GetScan() != nil:
		line += "; scanned: " + summaryCounts(res.GetScan())
	case res.GetScanError() != "":
		line += "; not scanned: " + res.GetScanError()
	}
	return line
}

// parseBuildArgs reads --build-arg values: KEY=VALUE, or KEY alone for the
// value of $KEY (left out when it is unset), as other builders do.
func parseBuildArgs(values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	args := make(map[string]string, len(values))
	for _, v := range values {
		key, val, ok := strings.Cut(v, "=")
		if key == "" {
			return nil, usageErrorf("--build-arg %q has no name: use KEY=VALUE", v)
		}
		if !ok {
			if val, ok = os.LookupEnv(key); !ok {
				continue
			}
		}
		args[key] = val
	}
	return args, nil
}

func newBuildCommand(o *rootOptions) *cobra.Command {
	var (
		r         buildRequest
		buildArgs []string
		progress  string
		sign      string
	)
	cmd := &cobra.Command{
		Use:   "build [-t NAME[:TAG]]... [-f Dockerfile] [--build-arg K=V]... [--target T] [--no-cache] [--node NODE] [--progress auto|tty|plain] CONTEXT|GIT-URL",
		Short: "Build an image from a Dockerfile on a node of the cluster",
		Long: `Send the directory CONTEXT to a node, which builds the Dockerfile with its
BuildKit, into its image store. Services can then run the image on any
node: the others fetch it from that one.

The context leaves out what its .dockerignore matches (! patterns keep
paths back); the Dockerfile is always sent. -f names the Dockerfile,
relative to the working directory (default: CONTEXT/Dockerfile); one
outside the context, or - for standard input, is sent on its own.

CONTEXT can also be a git repository's URL, as docker build takes it:
https://host/repo.git#REF:SUBDIR (http URLs end in .git), git://host/repo,
ssh://user@host/repo.git or git@host:repo.git. The node's BuildKit
fetches it with git itself (REF is a branch, tag or commit; SUBDIR the
context's directory in the repository); -f is then the Dockerfile's path
in that directory.

The node is --node (name or ID), else the ready node with the most memory
not reserved by tasks. BuildKit's progress is drawn on standard error
(--progress tty redraws in place, plain prints line by line; auto picks tty
on a terminal). On success, the image and its digest are printed.`,
		Example: `  # Build ./ as web:1
  berth build -t web:1 .

  # Another Dockerfile, a build argument, a stage, on node-2
  berth build -t web:dev -f docker/Dockerfile.dev --build-arg VERSION=1.2 --target dev --node node-2 .

  # The main branch's web/ directory of a git repository
  berth build -t web:main 'https://git.example.com/team/site.git#main:web'

  # The Dockerfile from standard input
  berth build -t tools:1 -f - . < Dockerfile.tools`,
		GroupID: groupApps,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := displayMode(progress)
			if err != nil {
				return err
			}
			if r.args, err = parseBuildArgs(buildArgs); err != nil {
				return err
			}
			r.contextDir = args[0]
			if gitcontext.Is(args[0]) {
				r.contextDir, r.gitContext = "", args[0]
			}
			if r.contextDir == "-" {
				return usageErrorf("a build context from standard input is not supported: give a directory (the Dockerfile can come from standard input with -f -)")
			}
			if r.dockerfile == "-" {
				if r.dockerfileContent, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return fmt.Errorf("read the Dockerfile from standard input: %w", err)
				}
				if len(r.dockerfileContent) == 0 {
					return errors.New("-f -: standard input held no Dockerfile")
				}
			}
			if _, _, err := r.header(); err != nil {
				return err
			}
			var sk signingKey
			if sign != "" {
				if err := signableTags(r.tags); err != nil {
					return err
				}
				if sk, err = readSigningKey(sign); err != nil {
					return fmt.Errorf("build: %w", err)
				}
				defer sk.forget()
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				res, err := c.build(ctx, r, cmd.ErrOrStderr(), mode)
				if err != nil {
					return fmt.Errorf("build %s: %w", cmp.Or(strings.Join(r.tags, ", "), r.contextDir, r.gitContext), err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), builtLine(res))
				if sign == "" {
					return nil
				}
				// --sign pushes every tag that names a registry from the
				// node that built it, then signs the digest each push
				// reported.
				for _, tag := range r.tags {
					if err := c.pushAndSign(ctx, cmd, tag, res.GetNodeId(), sign, sk); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&r.tags, "tag", "t", nil, "name the image NAME[:TAG]; repeat for several names")
	f.StringVarP(&r.dockerfile, "file", "f", "", "the Dockerfile (default: CONTEXT/Dockerfile); - reads it from standard input")
	f.StringArrayVar(&buildArgs, "build-arg", nil, "set a build argument KEY=VALUE (KEY alone takes $KEY); repeat for several")
	f.StringVar(&r.target, "target", "", "build this stage of a multi-stage Dockerfile (default: the last)")
	f.BoolVar(&r.noCache, "no-cache", false, "build every step again, without the build cache")
	f.StringVar(&r.node, "node", "", "build on this node (name or ID; default: the ready node with the most free memory)")
	f.StringVar(&progress, "progress", "auto", "progress display: auto, tty or plain")
	f.StringVar(&sign, "sign", "", "push each -t tag to its registry and sign the pushed digest in cosign's format, with this cluster key or cosign key file")
	return cmd
}

// signableTags checks that a build with --sign has tags, each naming a
// registry to push to: a signature lives beside the image in its registry.
func signableTags(tags []string) error {
	if len(tags) == 0 {
		return usageErrorf("build --sign: name the image with -t REGISTRY/REPOSITORY:TAG; the signature is stored in that registry")
	}
	for _, t := range tags {
		ref, err := imageref.Parse(t)
		if err != nil {
			return fmt.Errorf("build --sign: -t %s: %w", t, err)
		}
		if !strings.Contains(t, "/") || !strings.ContainsAny(strings.Split(t, "/")[0], ".:") && strings.Split(t, "/")[0] != "localhost" {
			return usageErrorf("build --sign: -t %s names no registry (it would go to %s); name one, as in 127.0.0.1:5000/%s", t, ref.Host(), ref.Familiar())
		}
	}
	return nil
}
