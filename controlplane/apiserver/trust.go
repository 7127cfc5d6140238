package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/trust"
	"github.com/berthproject/berth/internal/imagesig"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// trustError maps the errors of package trust to gRPC codes: the one
// place that does.
func trustError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, trust.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, trust.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, trust.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, trust.ErrInUse), errors.Is(err, trust.ErrNoKEK):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, trust.ErrRegistry):
		return status.Error(codes.Unavailable, err.Error())
	}
	return storeError(err)
}

func (s *Server) trust() (*trust.Trust, error) {
	if s.cfg.Trust == nil {
		return nil, status.Error(codes.Unimplemented, "this server keeps no signing keys or trust policies")
	}
	return s.cfg.Trust, nil
}

// GenerateKey makes a signing key pair; the answer has its public key.
func (s *Server) GenerateKey(ctx context.Context, req *berthv1.GenerateKeyRequest) (*berthv1.GenerateKeyResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	ns := namespaceOf(req.Namespace)
	k, err := t.GenerateKey(ctx, ns, req.Name)
	if err != nil {
		return nil, trustError(err)
	}
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: req.Name, Action: "key-generate",
		Message: fmt.Sprintf("signing key %s generated in namespace %s", req.Name, ns), Attributes: map[string]string{store.AttrNamespace: ns}})
	return &berthv1.GenerateKeyResponse{Key: k}, nil
}

// ImportKey keeps a key pair made elsewhere; the answer has its public key.
func (s *Server) ImportKey(ctx context.Context, req *berthv1.ImportKeyRequest) (*berthv1.ImportKeyResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	ns := namespaceOf(req.Namespace)
	k, err := t.ImportKey(ctx, ns, req.Name, req.PrivateKey)
	clear(req.PrivateKey)
	if err != nil {
		return nil, trustError(err)
	}
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: req.Name, Action: "key-import",
		Message: fmt.Sprintf("signing key %s imported in namespace %s", req.Name, ns), Attributes: map[string]string{store.AttrNamespace: ns}})
	return &berthv1.ImportKeyResponse{Key: k}, nil
}

// ListKeys lists signing keys, public halves only.
func (s *Server) ListKeys(ctx context.Context, req *berthv1.ListKeysRequest) (*berthv1.ListKeysResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	resp := &berthv1.ListKeysResponse{}
	for _, k := range t.Keys("") {
		if sc.has(k.Namespace) {
			resp.Keys = append(resp.Keys, k)
		}
	}
	return resp, nil
}

// RemoveKey removes a signing key no trust policy trusts.
func (s *Server) RemoveKey(ctx context.Context, req *berthv1.RemoveKeyRequest) (*berthv1.RemoveKeyResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	ns := namespaceOf(req.Namespace)
	if users := s.triggersSigningWith(ns, req.Name); len(users) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "key %s signs what triggers %s build; remove them (`berth trigger rm`) or create them again without --sign first",
			req.Name, strings.Join(users, ", "))
	}
	if err := t.RemoveKey(ctx, ns, req.Name); err != nil {
		return nil, trustError(err)
	}
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: req.Name, Action: "key-remove",
		Message: fmt.Sprintf("signing key %s removed from namespace %s", req.Name, ns), Attributes: map[string]string{store.AttrNamespace: ns}})
	return &berthv1.RemoveKeyResponse{}, nil
}

// triggersSigningWith names the build triggers of namespace ns that sign
// with key: removing it would fail all their runs.
func (s *Server) triggersSigningWith(ns, key string) []string {
	if s.cfg.Triggers == nil {
		return nil
	}
	var names []string
	for _, trig := range s.cfg.Triggers.Triggers.List() {
		if trig.Namespace == ns && trig.SignKey == key {
			names = append(names, trig.Name)
		}
	}
	slices.Sort(names)
	return names
}

// SignImage signs an image's digest in its registry with a cluster key.
func (s *Server) SignImage(ctx context.Context, req *berthv1.SignImageRequest) (*berthv1.SignImageResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	if (req.Key == "") == (len(req.PrivateKey) == 0) {
		return nil, status.Error(codes.InvalidArgument, "sign: give one key: a key of the namespace with --key NAME (`berth key ls`), or a cosign key file with --key FILE")
	}
	ns := namespaceOf(req.Namespace)
	var repo, digest, tag string
	signer := req.Key
	if len(req.PrivateKey) > 0 {
		signer = "a key file"
		repo, digest, tag, err = t.SignWith(ctx, ns, req.Image, req.PrivateKey)
		clear(req.PrivateKey)
	} else {
		repo, digest, tag, err = t.Sign(ctx, ns, req.Image, req.Key)
	}
	if err != nil {
		return nil, trustError(err)
	}
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: repo + "@" + digest, Action: "sign",
		Message: fmt.Sprintf("%s@%s signed with %s", repo, digest, signer), Attributes: map[string]string{store.AttrNamespace: ns}})
	return &berthv1.SignImageResponse{Image: repo, Digest: digest, Signature: tag}, nil
}

// SetTrustPolicy makes or replaces a trust policy. A policy that covers
// no service of the namespace is stored, and the answer says so.
func (s *Server) SetTrustPolicy(ctx context.Context, req *berthv1.SetTrustPolicyRequest) (*berthv1.SetTrustPolicyResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	ns := namespaceOf(req.Namespace)
	p, err := t.SetPolicy(ctx, ns, req.Pattern, req.Keys)
	if err != nil {
		return nil, trustError(err)
	}
	matching := trust.MatchingServices(req.Pattern, ns, s.cfg.Cache.Services(store.ServicesPrefix+ns+"/"))
	if len(matching) == 0 {
		warn(ctx, fmt.Sprintf("trust policy %s matches no service of namespace %s now; it applies to the services that use a matching image from now on", req.Pattern, ns))
	}
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: req.Pattern, Action: "trust-set",
		Message: fmt.Sprintf("trust policy %s set in namespace %s (%d keys)", req.Pattern, ns, len(p.Keys)), Attributes: map[string]string{store.AttrNamespace: ns}})
	return &berthv1.SetTrustPolicyResponse{Policy: p, MatchingServices: matching}, nil
}

// ListTrustPolicies lists trust policies.
func (s *Server) ListTrustPolicies(ctx context.Context, req *berthv1.ListTrustPoliciesRequest) (*berthv1.ListTrustPoliciesResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	resp := &berthv1.ListTrustPoliciesResponse{}
	for _, p := range t.Policies("") {
		if sc.has(p.Namespace) {
			resp.Policies = append(resp.Policies, p)
		}
	}
	return resp, nil
}

// RemoveTrustPolicy removes a trust policy.
func (s *Server) RemoveTrustPolicy(ctx context.Context, req *berthv1.RemoveTrustPolicyRequest) (*berthv1.RemoveTrustPolicyResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	ns := namespaceOf(req.Namespace)
	if err := t.RemovePolicy(ctx, ns, req.Pattern); err != nil {
		return nil, trustError(err)
	}
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: req.Pattern, Action: "trust-remove",
		Message: fmt.Sprintf("trust policy %s removed from namespace %s", req.Pattern, ns), Attributes: map[string]string{store.AttrNamespace: ns}})
	return &berthv1.RemoveTrustPolicyResponse{}, nil
}

// ListImageTags lists a repository's tags and digests from its registry,
// with the credential the cluster holds for it.
func (s *Server) ListImageTags(ctx context.Context, req *berthv1.ListImageTagsRequest) (*berthv1.ListImageTagsResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	ref, err := imageref.Parse(req.Repository)
	if err != nil || ref.Tag() != "" && ref.Tag() != "latest" || ref.Pinned() {
		return nil, status.Errorf(codes.InvalidArgument, "image tags: %q is not a repository; give registry/repository without a tag or digest, like 127.0.0.1:5000/team/app", req.Repository)
	}
	tags, err := t.Tags(ctx, ref.Repository())
	if err != nil {
		return nil, trustError(err)
	}
	resp := &berthv1.ListImageTagsResponse{Repository: ref.Repository()}
	for _, tg := range tags {
		resp.Tags = append(resp.Tags, &berthv1.ImageTag{Tag: tg.Name, Digest: tg.Digest})
	}
	return resp, nil
}

// checkTrust refuses the services of an apply whose image a trust
// policy of the namespace covers without a valid signature by one of its
// keys, as problems of their image field. Each image is checked once.
func (s *Server) checkTrust(ctx context.Context, ns string, services []*berthv1.Service) validation.Errors {
	if s.cfg.Trust == nil {
		return nil
	}
	type check struct{ image, digest string }
	checkable := func(spec *berthv1.ServiceSpec) bool { return spec.GetImage() != "" && spec.GetBuild() == nil }
	// Distinct images are checked at once, as pinDigests resolves them:
	// an apply of many images waits for the slowest registry, not the sum.
	var todo []check
	seen := map[check]bool{}
	for _, svc := range services {
		if spec := svc.GetSpec(); checkable(spec) {
			c := check{spec.GetImage(), spec.GetImageDigest()}
			if !seen[c] {
				seen[c] = true
				todo = append(todo, c)
			}
		}
	}
	verdicts := make(map[check]trust.Verdict, len(todo))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, c := range todo {
		wg.Go(func() {
			v := s.cfg.Trust.Check(ctx, ns, c.image, c.digest)
			mu.Lock()
			verdicts[c] = v
			mu.Unlock()
		})
	}
	wg.Wait()
	var errs validation.Errors
	for _, svc := range services {
		spec := svc.GetSpec()
		if !checkable(spec) {
			continue
		}
		c := check{spec.GetImage(), spec.GetImageDigest()}
		if v := verdicts[c]; v.Err != nil {
			errs = append(errs, validation.FieldError{Service: svc.GetName(), Field: "image", Reason: imagesig.Refusal(c.image, c.digest, v.Policy, v.Err)})
		}
	}
	return errs
}

// checkServiceTrust refuses to start new tasks of svc (scale, restart,
// rollback to spec) when a trust policy set since its apply covers its
// image without a valid signature. The error is a gRPC status.
func (s *Server) checkServiceTrust(ctx context.Context, svc *berthv1.Service, spec *berthv1.ServiceSpec) error {
	one := &berthv1.Service{Name: svc.GetName(), Spec: spec}
	if errs := s.checkTrust(ctx, svc.GetNamespace(), []*berthv1.Service{one}); len(errs) > 0 {
		return status.Error(codes.FailedPrecondition, errs.Error())
	}
	return nil
}

// maxVerifyImages bounds one VerifyImages request: each image may cost a
// registry round trip.
const maxVerifyImages = 64

// VerifyImages says, for each image digest, whether it is signed and by
// which key.
func (s *Server) VerifyImages(ctx context.Context, req *berthv1.VerifyImagesRequest) (*berthv1.VerifyImagesResponse, error) {
	t, err := s.trust()
	if err != nil {
		return nil, err
	}
	if len(req.Images) > maxVerifyImages {
		return nil, status.Errorf(codes.InvalidArgument, "verify images: %d images in one request; ask for at most %d", len(req.Images), maxVerifyImages)
	}
	ns := namespaceOf(req.Namespace)
	resp := &berthv1.VerifyImagesResponse{}
	for _, im := range req.Images {
		resp.Verdicts = append(resp.Verdicts, t.SignatureOf(ctx, ns, im.GetImage(), im.GetDigest()))
	}
	return resp, nil
}
