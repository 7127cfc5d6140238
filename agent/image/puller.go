package image

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"google.golang.org/protobuf/proto"
)

// Progress is how far the pull of an image is, and where from.
type Progress struct {
	// From says where the image comes from: "peer beta", "registry.local".
	From        string
	Done, Total int64
}

// String writes the progress as task status messages show it:
// "pulling 40% (12.0 MiB of 30.0 MiB) from peer beta".
func (p Progress) String() string {
	if p.Total <= 0 {
		return "pulling from " + p.From
	}
	return fmt.Sprintf("pulling %d%% (%s of %s) from %s", p.Done*100/p.Total, mib(p.Done), mib(p.Total), p.From)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ErrPeerLacksImage is what a ProbeFunc returns, wrapped, for a peer that
// answers but does not hold the image.
var ErrPeerLacksImage = errors.New("the peer does not hold the image")

// ProbeFunc asks the content server at addr whether it holds ref (pinned
// to a digest), showing it grant (the HeaderPullGrant value), and returns
// the name of the node that answered ("" when unknown).
type ProbeFunc func(ctx context.Context, addr, ref, grant string) (node string, err error)

// PullerConfig says how a Puller fetches images.
type PullerConfig struct {
	Runtime runtime.Images
	// PeerTLS is the client configuration for peers' content servers
	// (PeerTLS); nil leaves peers out.
	PeerTLS *tls.Config
	// Self is this node's content address, skipped among the peers.
	Self string
	// Probe checks a peer before pulling from it; default an HTTPS HEAD
	// of the manifest with PeerTLS.
	Probe ProbeFunc
	// Pulled is called after each image that arrived, so the node can
	// tell the control plane.
	Pulled func()
	Log    *slog.Logger
}

// Puller makes sure the image of a task is on the node: already there
// (with the pinned digest when there is one), else from a peer node that
// holds it, else from its registry. Peers are asked only for a digest the
// control plane pinned and granted this node (ImageSource.pull_grants),
// never for a tag, and what they send is checked against that digest as
// it is stored (containerd's content store refuses content whose digest
// differs), so a peer can serve only the bits the control plane chose. It remembers the image sources that
// assignments carry, and pulls each image once however many tasks wait
// for it.
type Puller struct {
	cfg PullerConfig

	mu       sync.Mutex
	sources  map[string]*berthv1.ImageSource // by normalized image name
	inflight map[string]*pull
}

// pull is one fetch in progress that several tasks may wait for.
type pull struct {
	done chan struct{}
	// waiters counts the callers that joined the leader; guarded by the
	// Puller's mu.
	waiters   int
	img       runtime.Image
	err       error
	mu        sync.Mutex
	listeners []func(Progress)
}

func (p *pull) progress(pr Progress) {
	p.mu.Lock()
	ls := append([]func(Progress){}, p.listeners...)
	p.mu.Unlock()
	for _, l := range ls {
		l(pr)
	}
}

// NewPuller returns a puller; cfg.Runtime is required.
func NewPuller(cfg PullerConfig) *Puller {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Probe == nil {
		cfg.Probe = httpProbe(cfg.PeerTLS)
	}
	return &Puller{cfg: cfg, sources: map[string]*berthv1.ImageSource{}, inflight: map[string]*pull{}}
}

// SetSources remembers where the images of assigned tasks can be fetched;
// a later source for the same image replaces the earlier one.
func (p *Puller) SetSources(sources []*berthv1.ImageSource) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range sources {
		name, err := imageref.Normalize(s.GetImage())
		if err != nil {
			continue
		}
		p.sources[name] = s
	}
}

// Source returns the last source SetSources gave for image, or nil.
func (p *Puller) Source(image string) *berthv1.ImageSource {
	name, err := imageref.Normalize(image)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sources[name]
}

// Ensure makes sure image (pinned to manifest digest dgst when set) is in
// the node's store, fetching it from the source SetSources gave for it.
// progress, when set, follows the transfer.
func (p *Puller) Ensure(ctx context.Context, image, dgst string, progress func(Progress)) (runtime.Image, error) {
	return p.Pull(ctx, image, dgst, p.Source(image), progress)
}

// Pull makes sure image (pinned to dgst when set) is in the node's store,
// fetching it from src when it is not: from each of src's peers in order,
// then from the image's registry with src's credential. The error names
// every place tried and what each said.
func (p *Puller) Pull(ctx context.Context, image, dgst string, src *berthv1.ImageSource, progress func(Progress)) (runtime.Image, error) {
	name, err := imageref.Normalize(image)
	if err != nil {
		return runtime.Image{}, err
	}
	if im, ok, err := p.local(ctx, name, dgst); err != nil || ok {
		return im, err
	}
	key := name + "@" + dgst
	for {
		p.mu.Lock()
		f, joined := p.inflight[key]
		if joined {
			f.waiters++
		} else {
			f = &pull{done: make(chan struct{})}
			p.inflight[key] = f
		}
		if progress != nil {
			f.mu.Lock()
			f.listeners = append(f.listeners, progress)
			f.mu.Unlock()
		}
		p.mu.Unlock()
		if !joined {
			f.img, f.err = p.fetch(ctx, name, dgst, src, f.progress)
			p.mu.Lock()
			delete(p.inflight, key)
			p.mu.Unlock()
			close(f.done)
			if f.err == nil && p.cfg.Pulled != nil {
				p.cfg.Pulled()
			}
			return f.img, f.err
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return runtime.Image{}, ctx.Err()
		}
		// The task that led the fetch went away and cut it short; this
		// one still wants the image, so it leads the next try.
		if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
			continue
		}
		return f.img, f.err
	}
}

// Present reports whether image, pinned to dgst when set, is in the node's
// store, so that Ensure would fetch nothing.
func (p *Puller) Present(ctx context.Context, image, dgst string) (bool, error) {
	name, err := imageref.Normalize(image)
	if err != nil {
		return false, err
	}
	_, ok, err := p.local(ctx, name, dgst)
	return ok, err
}

// local finds image name in the store, with digest dgst when set.
func (p *Puller) local(ctx context.Context, name, dgst string) (runtime.Image, bool, error) {
	if dgst == "" {
		// The common case, on every container start: one lookup, not a
		// listing that sizes every image.
		ok, err := p.cfg.Runtime.ImageExists(ctx, name)
		if err != nil {
			return runtime.Image{}, false, fmt.Errorf("image %s: looking it up on the node: %w", name, err)
		}
		return runtime.Image{Name: name}, ok, nil
	}
	images, err := p.cfg.Runtime.ListImages(ctx)
	if err != nil {
		return runtime.Image{}, false, fmt.Errorf("image %s: listing the node's images: %w", name, err)
	}
	for _, im := range images {
		if im.Name == name && (dgst == "" || im.Digest == dgst) {
			return im, true, nil
		}
	}
	return runtime.Image{}, false, nil
}

// fetch tries the peers, then the registry.
func (p *Puller) fetch(ctx context.Context, name, dgst string, src *berthv1.ImageSource, progress func(Progress)) (runtime.Image, error) {
	r, err := imageref.Parse(name)
	if err != nil {
		return runtime.Image{}, err
	}
	ref := name
	opts := runtime.PullOptions{}
	if dgst != "" {
		// Pull the pinned bits, and keep the name the task runs.
		pinned, err := r.WithDigest(dgst)
		if err != nil {
			return runtime.Image{}, err
		}
		ref = pinned.String()
		opts.Name = name
	}
	var lacking, failed []string
	grant := grantFor(src, dgst)
	peers := 0
	if p.cfg.PeerTLS != nil && dgst != "" && grant != "" {
		peers = len(src.GetPeers())
		header := http.Header{HeaderPullGrant: {grant}}
		for _, peer := range src.GetPeers() {
			if peer == "" || peer == p.cfg.Self {
				continue
			}
			node, err := p.cfg.Probe(ctx, peer, ref, grant)
			who := peer
			if node != "" {
				who = node
			}
			if errors.Is(err, ErrPeerLacksImage) {
				lacking = append(lacking, who)
				continue
			}
			if err != nil {
				failed = append(failed, fmt.Sprintf("peer %s: %v", who, err))
				continue
			}
			o := opts
			o.Registry = runtime.Registry{Host: peer, TLS: p.cfg.PeerTLS, Header: header}
			o.Progress = reporter("peer "+who, progress)
			im, err := p.cfg.Runtime.Pull(ctx, ref, o)
			if err == nil {
				p.cfg.Log.Info("pulled an image from a peer", "image", name, "digest", im.Digest, "peer", who)
				return im, nil
			}
			p.cfg.Log.Warn("pulling an image from a peer failed; trying the next source", "image", name, "peer", who, "err", err)
			failed = append(failed, fmt.Sprintf("peer %s: %v", who, err))
		}
	}
	registry := r.Host()
	o := opts
	o.Registry = runtime.Registry{Username: src.GetUsername(), Secret: src.GetSecret(), PlainHTTP: src.GetInsecure()}
	o.Progress = reporter(registry, progress)
	im, err := p.cfg.Runtime.Pull(ctx, ref, o)
	if err == nil {
		p.cfg.Log.Info("pulled an image from its registry", "image", name, "digest", im.Digest, "registry", registry)
		return im, nil
	}
	return runtime.Image{}, pullError(name, registry, peers, lacking, failed, err)
}

// grantFor returns the pull grant of src for manifest digest dgst, as the
// HeaderPullGrant value, or "" when src has none.
func grantFor(src *berthv1.ImageSource, dgst string) string {
	if dgst == "" {
		return ""
	}
	for _, raw := range src.GetPullGrants() {
		var signed berthv1.SignedPullGrant
		var g berthv1.PullGrant
		if proto.Unmarshal(raw, &signed) != nil || proto.Unmarshal(signed.GetGrant(), &g) != nil {
			continue
		}
		if g.GetDigest() == dgst {
			return base64.StdEncoding.EncodeToString(raw)
		}
	}
	return ""
}

// pullError says what was tried for image name and how to fix it.
func pullError(name, registry string, peers int, lacking, failed []string, regErr error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "image %s: ", name)
	switch {
	case len(lacking) > 0:
		fmt.Fprintf(&b, "not on peers %s; ", strings.Join(lacking, ", "))
	case peers == 0:
		b.WriteString("no other node serves it to this one; ")
	}
	for _, f := range failed {
		b.WriteString(f + "; ")
	}
	// The runtime's wrapping repeats the image name: say what it wraps.
	cause := regErr
	if inner := errors.Unwrap(regErr); inner != nil {
		cause = inner
	}
	fmt.Fprintf(&b, "registry %s: %v", registry, cause)
	msg := strings.ToLower(cause.Error())
	switch {
	case strings.Contains(msg, "401") || strings.Contains(msg, "403") || strings.Contains(msg, "unauthorized") || strings.Contains(msg, "denied"):
		fmt.Fprintf(&b, " — run `berth login %s`", registry)
	case strings.Contains(msg, "not found"):
		b.WriteString(" — push it to its registry, or load it on a node with `berth image import`")
	default:
		fmt.Fprintf(&b, " — check that %s is reachable, or load the image on a node with `berth image import`", registry)
	}
	return &sourceError{msg: b.String(), err: regErr}
}

// sourceError is a failed pull: its message tells every source tried, and
// it wraps the registry's error.
type sourceError struct {
	msg string
	err error
}

func (e *sourceError) Error() string { return e.msg }
func (e *sourceError) Unwrap() error { return e.err }

// reporter tags a runtime's progress with where it comes from.
func reporter(from string, fn func(Progress)) func(runtime.Progress) {
	if fn == nil {
		return nil
	}
	return func(p runtime.Progress) { fn(Progress{From: from, Done: p.Done, Total: p.Total}) }
}
