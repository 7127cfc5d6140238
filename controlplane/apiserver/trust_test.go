package apiserver

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/trust"
)

// withTrust gives s keys and trust policies on its own store, running
// until the test ends.
func withTrust(t *testing.T, s *Server) {
	t.Helper()
	kek, err := seal.New(bytes.Repeat([]byte{3}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	tr := trust.New(trust.Config{Store: s.cfg.Store, KEK: kek, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("trust: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := tr.WaitSynced(wctx); err != nil {
		t.Fatal(err)
	}
	s.cfg.Trust = tr
}

// pushImages runs an in-memory registry on loopback and pushes a random
// image to each repository, returning the registry's host and the
// digests by repository.
func pushImages(t *testing.T, repos ...string) (string, map[string]string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	digests := map[string]string{}
	for _, r := range repos {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.NewTag(host+"/"+r+":1", name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests[r] = d.String()
	}
	return host, digests
}

func TestApplyUnderTrustPolicy(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	withTrust(t, s)
	host, digests := pushImages(t, "team/signed", "team/unsigned", "other/free")
	pinned := func(name, repo string) *berthv1.Service {
		sv := svc(name, host+"/"+repo+":1", 1)
		sv.Spec.ImageDigest = digests[repo]
		return sv
	}

	if _, err := s.GenerateKey(ctx, &berthv1.GenerateKeyRequest{Name: "release"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignImage(ctx, &berthv1.SignImageRequest{Image: host + "/team/signed:1", Key: "release"}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.SetTrustPolicy(ctx, &berthv1.SetTrustPolicyRequest{Pattern: host + "/team/*", Keys: []*berthv1.TrustKey{{Name: "release", Cluster: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.MatchingServices) != 0 {
		t.Fatalf("a policy over no service matches %v", resp.MatchingServices)
	}

	// One unsigned image refuses the whole apply, as a problem of its
	// service's image field naming the image, the digest and the policy.
	_, err = s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{
		pinned("web", "team/signed"), pinned("worker", "team/unsigned"), pinned("tool", "other/free"),
	}})
	errs, ok := validation.FromError(err)
	if status.Code(err) != codes.InvalidArgument || !ok || len(errs) != 1 {
		t.Fatalf("apply with an unsigned image: %v", err)
	}
	e := errs[0]
	for _, w := range []string{host + "/team/unsigned:1", digests["team/unsigned"], `trust policy "` + host + `/team/*"`, "no signature"} {
		if !strings.Contains(e.Reason, w) {
			t.Errorf("refusal %q lacks %q", e.Reason, w)
		}
	}
	if e.Service != "worker" || e.Field != "image" {
		t.Errorf("refusal located at service %q field %q", e.Service, e.Field)
	}
	if got := s.cfg.Cache.Services(store.ServicesPrefix); len(got) != 0 {
		t.Fatalf("a refused apply stored %d services", len(got))
	}

	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{
		pinned("web", "team/signed"), pinned("tool", "other/free"),
	}}); err != nil {
		t.Fatalf("apply of signed and uncovered images: %v", err)
	}

	// A policy set after the apply stops new tasks of what it covers.
	if _, err := s.SetTrustPolicy(ctx, &berthv1.SetTrustPolicyRequest{Pattern: host + "/other/*", Keys: []*berthv1.TrustKey{{Name: "release", Cluster: true}}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.ScaleService(ctx, &berthv1.ScaleServiceRequest{App: "shop", Service: "tool", Replicas: 2})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), host+"/other/free:1") || !strings.Contains(err.Error(), host+"/other/*") {
		t.Fatalf("scale under a later policy: %v", err)
	}
	if _, err := s.ScaleService(ctx, &berthv1.ScaleServiceRequest{App: "shop", Service: "web", Replicas: 2}); err != nil {
		t.Fatalf("scale of a signed image: %v", err)
	}
	// Scaling down starts nothing, so it is not checked.
	if _, err := s.ScaleService(ctx, &berthv1.ScaleServiceRequest{App: "shop", Service: "tool", Replicas: 0}); err != nil {
		t.Fatalf("scale down: %v", err)
	}

	v, err := s.VerifyImages(ctx, &berthv1.VerifyImagesRequest{Images: []*berthv1.ImageDigest{
		{Image: host + "/team/signed:1", Digest: digests["team/signed"]},
		{Image: host + "/team/unsigned:1", Digest: digests["team/unsigned"]},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Verdicts[0].State != berthv1.SignatureState_SIGNATURE_STATE_SIGNED || v.Verdicts[0].Signer != "release" ||
		v.Verdicts[1].State != berthv1.SignatureState_SIGNATURE_STATE_UNSIGNED {
		t.Fatalf("verdicts %v", v.Verdicts)
	}

	for _, tc := range []struct {
		name string
		code codes.Code
		call func() error
	}{
		{"sign with an unknown key", codes.NotFound, func() error {
			_, err := s.SignImage(ctx, &berthv1.SignImageRequest{Image: host + "/team/signed:1", Key: "nokey"})
			return err
		}},
		{"sign with no key", codes.InvalidArgument, func() error {
			_, err := s.SignImage(ctx, &berthv1.SignImageRequest{Image: host + "/team/signed:1"})
			return err
		}},
		{"remove a key in use", codes.FailedPrecondition, func() error {
			_, err := s.RemoveKey(ctx, &berthv1.RemoveKeyRequest{Name: "release"})
			return err
		}},
		{"a bad pattern", codes.InvalidArgument, func() error {
			_, err := s.SetTrustPolicy(ctx, &berthv1.SetTrustPolicyRequest{Pattern: "team/*", Keys: []*berthv1.TrustKey{{Name: "release", Cluster: true}}})
			return err
		}},
		{"tags of a tagged reference", codes.InvalidArgument, func() error {
			_, err := s.ListImageTags(ctx, &berthv1.ListImageTagsRequest{Repository: host + "/team/signed:1"})
			return err
		}},
	} {
		if err := tc.call(); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}
