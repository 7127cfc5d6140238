package image

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/fake"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
)

const (
	webRef    = "registry.local/web:1"
	webDigest = "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
)

// world is a fake cluster for a puller: which peer address holds the
// image under which node name, what the registry answers, and the pulls
// that were tried, in order.
type world struct {
	mu       sync.Mutex
	peers    map[string]string // address -> node name, for peers that hold the image
	names    map[string]string // address -> node name, for every peer
	broken   map[string]bool   // peers that hold the image but fail the transfer
	registry error             // nil: the registry holds the image
	tried    []string
}

func (w *world) probe(_ context.Context, addr, ref, grant string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if grant == "" || !strings.Contains(ref, "@sha256:") {
		return "", fmt.Errorf("probe of %s for %s without a grant or a digest", addr, ref)
	}
	if _, ok := w.names[addr]; !ok {
		return "", errors.New("connection refused")
	}
	if _, ok := w.peers[addr]; !ok {
		return w.names[addr], ErrPeerLacksImage
	}
	return w.names[addr], nil
}

func (w *world) pull(_ context.Context, ref string, opts runtime.PullOptions) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	from := "registry"
	if opts.Host != "" {
		from = "peer " + opts.Host
	}
	if opts.Username != "" {
		from += " as " + opts.Username
	}
	w.tried = append(w.tried, from+" "+ref)
	switch {
	case opts.Host != "" && (opts.Header.Get(HeaderPullGrant) == "" || !strings.Contains(ref, "@sha256:")):
		return "", fmt.Errorf("peer pull of %s without a grant or a digest", ref)
	case opts.Host != "" && w.broken[opts.Host]:
		return "", errors.New("connection reset")
	case opts.Host != "":
		return webDigest, nil
	case w.registry != nil:
		return "", w.registry
	default:
		return webDigest, nil
	}
}

func (w *world) pulls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.tried)
}

// granted is a source with peers and a pull grant for webDigest (its
// signature is the content server's business, not the puller's).
func granted(peers ...string) *berthv1.ImageSource {
	g, _ := proto.Marshal(&berthv1.PullGrant{NodeId: "n9", Digest: webDigest})
	signed, _ := proto.Marshal(&berthv1.SignedPullGrant{Grant: g, Signature: []byte("sig")})
	return &berthv1.ImageSource{Peers: peers, PullGrants: [][]byte{signed}}
}

func TestPullerOrder(t *testing.T) {
	names := map[string]string{"10.0.0.2:1": "beta", "10.0.0.3:1": "gamma", "10.0.0.4:1": "delta", "10.0.0.5:1": "epsilon"}
	pinned := "registry.local/web@" + webDigest
	tests := []struct {
		name      string
		local     string // digest of the local image; "" for none
		digest    string // the spec's pin
		src       *berthv1.ImageSource
		holders   []string
		broken    []string
		registry  error
		wantPulls []string
		wantErr   []string // substrings of the error; nil for success
	}{
		{
			name: "present locally", local: "sha256:old", src: granted("10.0.0.2:1"),
		},
		{
			name: "present with the pinned digest", local: webDigest, digest: webDigest,
		},
		{
			name: "present with another digest is pulled pinned", local: "sha256:old", digest: webDigest,
			src: granted("10.0.0.2:1"), holders: []string{"10.0.0.2:1"},
			wantPulls: []string{"peer 10.0.0.2:1 " + pinned},
		},
		{
			name: "first peer that holds it", digest: webDigest, src: granted("10.0.0.2:1", "10.0.0.3:1"),
			holders: []string{"10.0.0.3:1"}, wantPulls: []string{"peer 10.0.0.3:1 " + pinned},
		},
		{
			name: "a tag is never fetched from peers", src: granted("10.0.0.2:1"),
			holders: []string{"10.0.0.2:1"}, wantPulls: []string{"registry " + webRef},
		},
		{
			name: "a pinned digest without a grant for it is not fetched from peers", digest: webDigest,
			src: &berthv1.ImageSource{Peers: []string{"10.0.0.2:1"}}, holders: []string{"10.0.0.2:1"},
			wantPulls: []string{"registry " + pinned},
		},
		{
			name: "the agent's own address is skipped", digest: webDigest, src: granted("10.0.0.9:1", "10.0.0.2:1"),
			holders: []string{"10.0.0.2:1"}, wantPulls: []string{"peer 10.0.0.2:1 " + pinned},
		},
		{
			name: "a failing peer falls through to the next", digest: webDigest, src: granted("10.0.0.2:1", "10.0.0.3:1"),
			holders: []string{"10.0.0.2:1", "10.0.0.3:1"}, broken: []string{"10.0.0.2:1"},
			wantPulls: []string{"peer 10.0.0.2:1 " + pinned, "peer 10.0.0.3:1 " + pinned},
		},
		{
			name:   "registry with the credential when no peer has it",
			digest: webDigest,
			src: func() *berthv1.ImageSource {
				s := granted("10.0.0.2:1")
				s.Username, s.Secret = "ci", "s3cret"
				return s
			}(),
			wantPulls: []string{"registry as ci " + pinned},
		},
		{
			name: "no source at all goes to the registry", wantPulls: []string{"registry " + webRef},
		},
		{
			name: "everything fails", digest: webDigest, src: granted("10.0.0.2:1", "10.0.0.3:1", "10.0.0.6:1"),
			registry:  errors.New("401 Unauthorized"),
			wantPulls: []string{"registry " + pinned},
			wantErr:   []string{"image registry.local/web:1: not on peers beta, gamma;", "peer 10.0.0.6:1: connection refused", "registry registry.local: 401 Unauthorized — run `berth login registry.local`"},
		},
		{
			name: "a registry without the image", registry: fmt.Errorf("registry.local/web:1: %w", runtime.ErrImageNotFound),
			wantPulls: []string{"registry " + webRef},
			wantErr:   []string{"image registry.local/web:1: no other node serves it to this one; registry registry.local: registry.local/web:1: image not found — push it", "berth image import"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := fake.New()
			if tt.local != "" {
				if err := rt.AddImageDigest(webRef, tt.local); err != nil {
					t.Fatal(err)
				}
			}
			w := &world{names: names, peers: map[string]string{}, broken: map[string]bool{}, registry: tt.registry}
			for _, h := range tt.holders {
				w.peers[h] = names[h]
			}
			for _, b := range tt.broken {
				w.broken[b] = true
			}
			rt.SetPull(w.pull)
			var pulled int
			p := NewPuller(PullerConfig{Runtime: rt, PeerTLS: &tls.Config{}, Self: "10.0.0.9:1", Probe: w.probe, Pulled: func() { pulled++ }})
			src := tt.src
			if src != nil {
				src.Image = webRef
				p.SetSources([]*berthv1.ImageSource{src})
			}
			im, err := p.Ensure(context.Background(), webRef, tt.digest, nil)
			if got := w.pulls(); !slices.Equal(got, tt.wantPulls) {
				t.Errorf("pulls %q, want %q", got, tt.wantPulls)
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want one saying %q", tt.wantErr)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if im.Name != webRef {
				t.Errorf("image %s, want %s", im.Name, webRef)
			}
			if tt.digest != "" && im.Digest != tt.digest {
				t.Errorf("image digest %s, want the pinned %s", im.Digest, tt.digest)
			}
			if want := min(len(tt.wantPulls), 1); pulled != want {
				t.Errorf("Pulled called %d times, want %d", pulled, want)
			}
		})
	}
}

// blockingPull holds every pull until release is closed, counting them.
type blockingPull struct {
	mu      sync.Mutex
	count   int
	started chan struct{}
	release chan struct{}
}

func (b *blockingPull) pull(ctx context.Context, _ string, opts runtime.PullOptions) (string, error) {
	b.mu.Lock()
	b.count++
	b.mu.Unlock()
	b.started <- struct{}{}
	select {
	case <-b.release:
		return webDigest, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func TestPullerSharesOnePullAndOutlivesALeavingTask(t *testing.T) {
	rt := fake.New()
	b := &blockingPull{started: make(chan struct{}, 10), release: make(chan struct{})}
	rt.SetPull(b.pull)
	p := NewPuller(PullerConfig{Runtime: rt})

	// The first task leads the pull, then goes away.
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() {
		_, err := p.Ensure(leaderCtx, webRef, "", nil)
		leaderDone <- err
	}()
	waitFor(t, b.started, "the first pull")
	// A second task waits for the same image.
	waiterDone := make(chan error, 1)
	go func() {
		_, err := p.Ensure(context.Background(), webRef, "", nil)
		waiterDone <- err
	}()
	// Let the waiter join before the leader leaves: poll the puller.
	deadline := time.Now().Add(10 * time.Second)
	for !joined(p, webRef) {
		if time.Now().After(deadline) {
			t.Fatal("the second task never waited on the first pull")
		}
		time.Sleep(time.Millisecond)
	}
	cancelLeader()
	if err := waitErr(t, leaderDone); !errors.Is(err, context.Canceled) {
		t.Fatalf("the leaving task got %v, want context.Canceled", err)
	}
	// The waiter leads a new pull, which completes.
	waitFor(t, b.started, "the second pull")
	close(b.release)
	if err := waitErr(t, waiterDone); err != nil {
		t.Fatalf("the remaining task: %v", err)
	}
	if b.count != 2 {
		t.Errorf("%d pulls, want 2", b.count)
	}
}

// joined reports whether a caller waits on the pull of image in flight.
func joined(p *Puller, image string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.inflight[image+"@"]
	return f != nil && f.waiters > 0
}

func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func waitErr(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
		return nil
	}
}

func TestProgressString(t *testing.T) {
	tests := []struct {
		p    Progress
		want string
	}{
		{Progress{From: "peer beta", Done: 12 << 20, Total: 30 << 20}, "pulling 40% (12.0 MiB of 30.0 MiB) from peer beta"},
		{Progress{From: "registry.local"}, "pulling from registry.local"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.p, got, tt.want)
		}
	}
}
