// Package build builds container images on a Berth node. It drives a
// buildkitd with a containerd worker, so a built image lands straight in
// the node's containerd namespace, unpacked for the agent's snapshotter,
// ready to run without a registry.
//
// The agent starts its own buildkitd, lazily on the first build, as a
// supervised child process; or it uses one that runs already
// (Config.Addr, the agent's --buildkit-addr).
package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/tonistiigi/fsutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
)

// Errors a build can fail with, for the node endpoint to map to gRPC codes.
var (
	// ErrInvalid marks a request that cannot be built as sent: no tag, a
	// malformed tag, a Dockerfile path outside the context, a broken tar.
	ErrInvalid = errors.New("invalid build request")
	// ErrFailed marks a build that ran and failed: a Dockerfile error, a
	// failing RUN, a missing base image. The message holds the builder's
	// own error and, when it has one, the Dockerfile lines at fault.
	ErrFailed = errors.New("build failed")
	// ErrUnavailable marks a node that cannot build now: buildkitd is
	// missing, did not start, or does not answer.
	ErrUnavailable = errors.New("the node's image builder is unavailable")
)

const (
	// DefaultBinary is the buildkitd the agent starts, looked up in PATH;
	// `make setup` installs it as /usr/local/bin/buildkitd.
	DefaultBinary = "buildkitd"
	// DefaultContainerdAddress is containerd's usual socket.
	DefaultContainerdAddress = "/run/containerd/containerd.sock"
	// DefaultNamespace is the agent's default containerd namespace.
	DefaultNamespace = "berth"

	// readyTimeout bounds the wait for a buildkitd to answer: one just
	// started opens its databases and connects to containerd first.
	readyTimeout = time.Minute
	// readyPoll is how often the wait asks.
	readyPoll = 100 * time.Millisecond
)

// Config says how a Builder reaches BuildKit.
type Config struct {
	// Addr is the address of a running buildkitd whose containerd worker
	// uses the agent's containerd namespace ("unix:///run/buildkit/buildkitd.sock");
	// empty makes the Builder start and supervise its own.
	Addr string
	// Binary is the buildkitd to start; default DefaultBinary.
	Binary string
	// ContainerdAddress is containerd's socket; default
	// DefaultContainerdAddress.
	ContainerdAddress string
	// ContainerdNamespace is where built images go: the agent's namespace.
	// Default DefaultNamespace.
	ContainerdNamespace string
	// StateDir holds the started buildkitd's state, socket and log
	// (buildkitd.log), and the unpacked build contexts. Required.
	StateDir string
	Log      *slog.Logger
}

// HistoryNamespace is the containerd namespace where the buildkitd of
// namespace ns keeps its build records (BuildKit's own naming); whoever
// removes ns removes this one too.
func HistoryNamespace(ns string) string { return ns + "_history" }

// Result is a built image.
type Result struct {
	// Image is the first tag, normalized as the node's image store names
	// it ("web:dev" is docker.io/library/web:dev).
	Image string
	// Digest is the image manifest's digest.
	Digest string
}

// Builder builds images with one buildkitd. It is safe for concurrent use.
type Builder struct {
	cfg    Config
	addr   string
	daemon *daemon // nil when Config.Addr names a running buildkitd

	mu     sync.Mutex
	client *client.Client
	closed bool
}

// New returns a Builder. It starts nothing: a buildkitd of its own starts
// with the first build, so nodes that never build spend nothing on it.
func New(cfg Config) (*Builder, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("build: a state directory is required")
	}
	if cfg.Binary == "" {
		cfg.Binary = DefaultBinary
	}
	if cfg.ContainerdAddress == "" {
		cfg.ContainerdAddress = DefaultContainerdAddress
	}
	if cfg.ContainerdNamespace == "" {
		cfg.ContainerdNamespace = DefaultNamespace
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	b := &Builder{cfg: cfg, addr: cfg.Addr}
	if b.addr == "" {
		b.addr = "unix://" + socketPath(cfg.StateDir)
		b.daemon = &daemon{
			binary: cfg.Binary,
			args:   daemonArgs(cfg.StateDir, cfg.ContainerdAddress, cfg.ContainerdNamespace),
			dir:    cfg.StateDir,
			log:    cfg.Log,
		}
	}
	return b, nil
}

// Close stops the Builder's own buildkitd, if it started one, and waits
// for it to exit. Builds still running fail.
func (b *Builder) Close() error {
	if b.daemon != nil {
		b.daemon.stop()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.client == nil {
		return nil
	}
	err := b.client.Close()
	b.client = nil
	return err
}

// Build builds the Dockerfile of h from the build context contextTar (a
// tar stream) and stores the image in the node's containerd namespace
// under every tag of h, unpacked so it can run. progress receives the
// builder's progress updates as they come; an error from it cancels the
// build. Errors wrap ErrInvalid, ErrFailed or ErrUnavailable.
func (b *Builder) Build(ctx context.Context, h *berthv1.BuildHeader, contextTar io.Reader, progress func(*controlapi.StatusResponse) error) (Result, error) {
	names, err := imageNames(h.GetTags())
	if err != nil {
		return Result{}, err
	}
	for k := range h.GetBuildArgs() {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return Result{}, fmt.Errorf("%w: build argument %q: give it as NAME=VALUE with a NAME of letters, digits and underscores", ErrInvalid, k)
		}
	}
	if h.GetGitContext() != "" {
		if err := checkGitContext(h); err != nil {
			return Result{}, err
		}
	}
	// Started before the context is read, so a missing buildkitd fails
	// the build before the upload, and a new one starts meanwhile.
	if err := b.startDaemon(); err != nil {
		return Result{}, err
	}
	if h.GetGitContext() != "" {
		return b.buildGit(ctx, h, names, progress)
	}
	dir, err := b.contextDir()
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	contextDir := filepath.Join(dir, "context")
	if err := os.Mkdir(contextDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("build context: %w", err)
	}
	dockerfileDir, dockerfileName, err := dockerfileLocation(h, contextDir, filepath.Join(dir, "dockerfile"))
	if err != nil {
		return Result{}, err
	}
	if err := extractContext(contextTar, contextDir); err != nil {
		return Result{}, err
	}

	c, err := b.connect(ctx)
	if err != nil {
		return Result{}, err
	}
	contextFS, err := fsutil.NewFS(contextDir)
	if err != nil {
		return Result{}, fmt.Errorf("build context: %w", err)
	}
	dockerfileFS, err := fsutil.NewFS(dockerfileDir)
	if err != nil {
		return Result{}, fmt.Errorf("build context: %w", err)
	}
	opt := solveOpt(h, names, frontendAttrs(h, dockerfileName))
	opt.LocalMounts = map[string]fsutil.FS{"context": contextFS, "dockerfile": dockerfileFS}
	return b.solveImage(ctx, c, opt, names, progress)
}

// solveOpt is the build of h's Dockerfile frontend with attrs, exported
// as an image named names into the node's store.
func solveOpt(h *berthv1.BuildHeader, names []string, attrs map[string]string) client.SolveOpt {
	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		Exports: []client.ExportEntry{{
			Type: client.ExporterImage,
			Attrs: map[string]string{
				"name": strings.Join(names, ","),
				// Unpacked for the worker's snapshotter, overlayfs like
				// the agent's runtime, so a container starts right away.
				"unpack": "true",
			},
		}},
	}
	if len(h.GetSecrets()) > 0 {
		// RUN --mount=type=secret reads them from memory, over the
		// build's session; they are never written on the node.
		opt.Session = append(opt.Session, secretsprovider.FromMap(buildSecrets(h)))
	}
	return opt
}

// solveImage runs opt and returns the image it exported.
func (b *Builder) solveImage(ctx context.Context, c *client.Client, opt client.SolveOpt, names []string, progress func(*controlapi.StatusResponse) error) (Result, error) {
	resp, err := b.solve(ctx, c, opt, progress)
	if err != nil {
		return Result{}, err
	}
	digest := resp.ExporterResponse[exptypes.ExporterImageDigestKey]
	if digest == "" {
		return Result{}, fmt.Errorf("%w: the builder reported no image digest", ErrFailed)
	}
	return Result{Image: names[0], Digest: digest}, nil
}

// buildSecrets maps each build secret's id to its data.
func buildSecrets(h *berthv1.BuildHeader) map[string][]byte {
	m := make(map[string][]byte, len(h.GetSecrets()))
	for _, s := range h.GetSecrets() {
		m[s.GetId()] = s.GetData()
	}
	return m
}

// solve runs the build, forwarding progress until the build ends.
func (b *Builder) solve(ctx context.Context, c *client.Client, opt client.SolveOpt, progress func(*controlapi.StatusResponse) error) (*client.SolveResponse, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	statuses := make(chan *client.SolveStatus)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		failed := false
		// The channel is drained to the end even after a failed send:
		// Solve blocks on it and closes it when it returns.
		for st := range statuses {
			if failed || progress == nil {
				continue
			}
			for _, sr := range st.Marshal() {
				if err := progress(sr); err != nil {
					failed = true
					cancel(fmt.Errorf("sending build progress: %w", err))
					break
				}
			}
		}
	}()
	resp, err := c.Solve(ctx, nil, opt, statuses)
	<-forwarded
	if err == nil {
		return resp, nil
	}
	if cause := context.Cause(ctx); cause != nil {
		return nil, cause
	}
	if grpcerrors.Code(err) == codes.Unavailable {
		return nil, fmt.Errorf("%w: lost buildkitd at %s during the build: %v", ErrUnavailable, b.addr, err)
	}
	return nil, fmt.Errorf("%w: %w%s", ErrFailed, err, sourceExcerpts(err))
}

// sourceExcerpts prints the Dockerfile lines a build error points at, as
// the builder's own display does, so the message names the line even when
// the error text alone (a failing RUN) does not.
func sourceExcerpts(err error) string {
	var buf bytes.Buffer
	for _, src := range errdefs.Sources(err) {
		buf.WriteString("\n")
		_ = src.Print(&buf)
	}
	return strings.TrimRight(buf.String(), "\n")
}

// startDaemon starts the Builder's own buildkitd, if it has one and it
// is not running yet.
func (b *Builder) startDaemon() error {
	if b.daemon == nil {
		return nil
	}
	return b.daemon.start()
}

// connect returns a client of a buildkitd that answers, starting the
// Builder's own first when it has one.
func (b *Builder) connect(ctx context.Context) (*client.Client, error) {
	if err := b.startDaemon(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: the agent is stopping", ErrUnavailable)
	}
	if b.client == nil {
		// Reconnects come quickly: the socket is local, and a restarted
		// buildkitd should not wait out gRPC's default backoff of up to
		// two minutes.
		retry := grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})
		c, err := client.New(context.WithoutCancel(ctx), b.addr, client.WithGRPCDialOption(retry))
		if err != nil {
			b.mu.Unlock()
			return nil, fmt.Errorf("%w: buildkitd at %s: %v", ErrUnavailable, b.addr, err)
		}
		b.client = c
	}
	c := b.client
	b.mu.Unlock()
	return c, b.waitReady(ctx, c)
}

// waitReady polls c until its buildkitd lists a worker, the deadline
// passes or the Builder's own buildkitd fails to start twice in a row
// while being waited for. One exit is not enough: the build may have come
// just as a crashed buildkitd was being restarted.
func (b *Builder) waitReady(ctx context.Context, c *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var exits0 int
	if b.daemon != nil {
		exits0, _ = b.daemon.status()
	}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		workers, err := c.ListWorkers(attempt)
		cancelAttempt()
		switch {
		case err == nil && len(workers) > 0:
			return nil
		case err == nil:
			err = errors.New("it has no worker")
		}
		if b.daemon == nil {
			// Someone else's buildkitd: no point waiting for it to start.
			return fmt.Errorf("%w: buildkitd at %s (--buildkit-addr) does not answer: %v", ErrUnavailable, b.addr, err)
		}
		if exits, exited := b.daemon.status(); exits >= exits0+2 {
			return b.notStarted(exited)
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return b.notStarted(fmt.Errorf("no answer on %s within %s: %v", b.addr, readyTimeout, err))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (b *Builder) notStarted(why error) error {
	tail := b.daemon.logTail()
	if tail != "" {
		tail = ", which ends with:\n" + tail
	}
	return fmt.Errorf("%w: buildkitd did not start: %v; see %s%s", ErrUnavailable, why, logPath(b.cfg.StateDir), tail)
}

// contextDir makes a private directory for one build's files.
func (b *Builder) contextDir() (string, error) {
	parent := filepath.Join(b.cfg.StateDir, "contexts")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("build context: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "build-")
	if err != nil {
		return "", fmt.Errorf("build context: %w", err)
	}
	return dir, nil
}

// imageNames normalizes the tags as the node's image store names images.
func imageNames(tags []string) ([]string, error) {
	if len(tags) == 0 {
		return nil, fmt.Errorf("%w: no tag for the image: name it (berth build -t NAME:TAG)", ErrInvalid)
	}
	names := make([]string, 0, len(tags))
	for _, t := range tags {
		named, err := imageref.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("%w: tag %q: %v", ErrInvalid, t, err)
		}
		if named.Pinned() {
			return nil, fmt.Errorf("%w: tag %q: a built image is named by a tag, not a digest", ErrInvalid, t)
		}
		names = append(names, named.String())
	}
	return names, nil
}

// dockerfileLocation returns the directory the Dockerfile is read from
// and its name there: the context's own, or h's dockerfile_content written
// to spare.
func dockerfileLocation(h *berthv1.BuildHeader, contextDir, spare string) (dir, name string, err error) {
	if len(h.GetDockerfileContent()) > 0 {
		if err := os.Mkdir(spare, 0o700); err != nil {
			return "", "", fmt.Errorf("build context: %w", err)
		}
		if err := os.WriteFile(filepath.Join(spare, "Dockerfile"), h.GetDockerfileContent(), 0o600); err != nil {
			return "", "", fmt.Errorf("build context: %w", err)
		}
		return spare, "Dockerfile", nil
	}
	path := h.GetDockerfile()
	if path == "" {
		path = "Dockerfile"
	}
	rel := filepath.FromSlash(path)
	if !filepath.IsLocal(rel) {
		return "", "", fmt.Errorf("%w: Dockerfile %q is not inside the build context: give its path in the context, or send its content", ErrInvalid, path)
	}
	return filepath.Join(contextDir, filepath.Dir(rel)), filepath.Base(rel), nil
}

// frontendAttrs are the Dockerfile frontend's options for h.
func frontendAttrs(h *berthv1.BuildHeader, dockerfileName string) map[string]string {
	attrs := map[string]string{"filename": dockerfileName}
	if h.GetTarget() != "" {
		attrs["target"] = h.GetTarget()
	}
	if h.GetNoCache() {
		attrs["no-cache"] = "" // empty: no stage may come from the cache
	}
	for k, v := range h.GetBuildArgs() {
		attrs["build-arg:"+k] = v
	}
	return attrs
}
