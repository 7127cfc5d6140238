package trust

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/internal/imagesig"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SetPolicy makes (or replaces) the policy of pattern in namespace,
// trusting keys: cluster keys by name, or public keys given as files. A
// key name that is not a key of the namespace, or a file that is not an
// ECDSA public key, refuses the whole request.
func (t *Trust) SetPolicy(ctx context.Context, namespace, pattern string, keys []*berthv1.TrustKey) (*berthv1.TrustPolicy, error) {
	if err := ValidatePattern(pattern); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: trust policy %s trusts no key; name one with --key NAME (a key of `berth key ls`) or --key FILE.pub", ErrInvalid, pattern)
	}
	var stored []*berthv1.TrustKey
	seen := map[string]bool{}
	for _, k := range keys {
		tk := &berthv1.TrustKey{Name: k.GetName(), Cluster: k.GetCluster()}
		if k.GetCluster() {
			pem, err := t.PublicKey(namespace, k.GetName())
			if err != nil {
				return nil, err
			}
			tk.PublicKeyPem = pem
		} else {
			if _, err := imagesig.ParsePublicKey(k.GetPublicKeyPem()); err != nil {
				return nil, fmt.Errorf("%w: key file %s: %v", ErrInvalid, k.GetName(), err)
			}
			tk.PublicKeyPem = k.GetPublicKeyPem()
		}
		if seen[tk.PublicKeyPem] {
			continue
		}
		seen[tk.PublicKeyPem] = true
		stored = append(stored, tk)
	}
	now := timestamppb.Now()
	p := &berthv1.TrustPolicy{
		Meta:      &berthv1.Meta{Id: store.NewID(), CreatedAt: now, UpdatedAt: now},
		Namespace: namespace,
		Pattern:   pattern,
		Keys:      stored,
	}
	if cur, ok := t.policy(namespace, pattern); ok && cur.GetMeta() != nil {
		p.Meta.Id, p.Meta.CreatedAt = cur.Meta.Id, cur.Meta.CreatedAt
	}
	var txn store.Txn
	txn.Put(store.TrustPolicyKey(namespace, pattern), p)
	rev, err := t.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return nil, fmt.Errorf("storing trust policy %s: %w", pattern, err)
	}
	if err := t.policies.WaitRevision(ctx, rev); err != nil {
		return nil, err
	}
	t.log.Info("trust policy set", "namespace", namespace, "pattern", pattern, "keys", len(stored))
	return p, nil
}

func (t *Trust) policy(namespace, pattern string) (*berthv1.TrustPolicy, bool) {
	return t.policies.Get(namespace + "/" + url.PathEscape(pattern))
}

// Policies lists the policies of namespace ("" for every namespace).
func (t *Trust) Policies(namespace string) []*berthv1.TrustPolicy {
	var out []*berthv1.TrustPolicy
	for _, p := range t.policies.List() {
		if namespace == "" || p.Namespace == namespace {
			out = append(out, proto.Clone(p).(*berthv1.TrustPolicy))
		}
	}
	sortPolicies(out)
	return out
}

// RemovePolicy removes the policy of pattern in namespace.
func (t *Trust) RemovePolicy(ctx context.Context, namespace, pattern string) error {
	p, ok := t.policy(namespace, pattern)
	if !ok {
		return fmt.Errorf("trust policy %q %w in namespace %s; `berth trust ls --namespace %s` lists them", pattern, ErrNotFound, namespace, namespace)
	}
	var txn store.Txn
	txn.Delete(store.TrustPolicyKey(namespace, pattern), p.GetMeta().GetVersion())
	rev, err := t.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return fmt.Errorf("removing trust policy %s: %w", pattern, err)
	}
	t.log.Info("trust policy removed", "namespace", namespace, "pattern", pattern)
	return t.policies.WaitRevision(ctx, rev)
}

// PolicyFor returns the policy that covers image in namespace, nil when
// none does.
func (t *Trust) PolicyFor(namespace, image string) *berthv1.TrustPolicy {
	ref, err := imageref.Parse(image)
	if err != nil {
		return nil
	}
	return PolicyFor(t.policies.List(), namespace, ref.Repository())
}

// ImageTrust is what an agent needs to verify image for a task of
// namespace: the covering policy and its keys; nil when no policy covers
// it. It is the dispatcher's Config.ImageTrust.
func (t *Trust) ImageTrust(namespace, image string) *berthv1.ImageTrust {
	p := t.PolicyFor(namespace, image)
	if p == nil {
		return nil
	}
	return &berthv1.ImageTrust{Namespace: namespace, Image: image, Policy: p.Pattern, Keys: p.Keys}
}

// Verdict is what Check found for one image.
type Verdict struct {
	// Policy is the pattern of the policy that covers the image; "" when
	// none does (and the image runs unchecked).
	Policy string
	// Signer is the name of the key whose signature was valid.
	Signer string
	// Err says why the image is refused; nil when it may run.
	Err error
}

// ErrNotPinned: a policy covers an image whose digest is unknown.
var ErrNotPinned = errors.New("its digest is unknown (the registry did not resolve the tag), so no signature can be checked")

// Check decides whether image, at digest, may run in namespace: allowed
// when no policy covers it, else only with a signature valid by one of
// the policy's keys, found in the image's registry (or in the cache).
func (t *Trust) Check(ctx context.Context, namespace, image, digest string) Verdict {
	p := t.PolicyFor(namespace, image)
	if p == nil {
		return Verdict{}
	}
	v := Verdict{Policy: p.Pattern}
	if digest == "" {
		v.Err = ErrNotPinned
		return v
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		v.Err = err
		return v
	}
	reg, err := t.registryOf(image)
	if err != nil {
		v.Err = err
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, registry.RemoteTimeout)
	defer cancel()
	v.Signer, _, v.Err = t.cache.Verify(ctx, ref.Repository(), digest, TrustKeys(p.Keys), reg)
	return v
}

// TrustKeys turns a policy's keys into the keys imagesig verifies with.
func TrustKeys(keys []*berthv1.TrustKey) []imagesig.Key {
	out := make([]imagesig.Key, len(keys))
	for i, k := range keys {
		out[i] = imagesig.Key{Name: k.GetName(), PEM: k.GetPublicKeyPem()}
	}
	return out
}

// MatchingServices lists the services of namespace whose image pattern
// covers, as app/service, from services.
func MatchingServices(pattern, namespace string, services []*berthv1.Service) []string {
	var out []string
	for _, s := range services {
		if s.GetNamespace() != namespace {
			continue
		}
		ref, err := imageref.Parse(s.GetSpec().GetImage())
		if err != nil {
			continue
		}
		if MatchPattern(pattern, ref.Repository()) {
			out = append(out, s.GetApp()+"/"+s.GetName())
		}
	}
	slices.Sort(out)
	return out
}

// SignatureOf says whether digest of image is signed: by the keys of the
// policy that covers image in namespace, else by the namespace's cluster
// keys; not checked when there are neither, or the digest is unknown.
func (t *Trust) SignatureOf(ctx context.Context, namespace, image, digest string) *berthv1.ImageVerdict {
	out := &berthv1.ImageVerdict{Image: image, Digest: digest, State: berthv1.SignatureState_SIGNATURE_STATE_NOT_CHECKED}
	var keys []imagesig.Key
	if p := t.PolicyFor(namespace, image); p != nil {
		out.Policy = p.Pattern
		keys = TrustKeys(p.Keys)
	} else {
		for _, k := range t.Keys(namespace) {
			keys = append(keys, imagesig.Key{Name: k.Name, PEM: k.PublicKeyPem})
		}
	}
	if len(keys) == 0 || digest == "" {
		return out
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		out.State, out.Error = berthv1.SignatureState_SIGNATURE_STATE_UNKNOWN, err.Error()
		return out
	}
	reg, err := t.registryOf(image)
	if err != nil {
		out.State, out.Error = berthv1.SignatureState_SIGNATURE_STATE_UNKNOWN, err.Error()
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, registry.RemoteTimeout)
	defer cancel()
	signer, _, err := t.cache.Verify(ctx, ref.Repository(), digest, keys, reg)
	switch {
	case err == nil:
		out.State, out.Signer = berthv1.SignatureState_SIGNATURE_STATE_SIGNED, signer
	case errors.Is(err, imagesig.ErrUnsigned), errors.Is(err, imagesig.ErrNoValidSignature):
		out.State, out.Error = berthv1.SignatureState_SIGNATURE_STATE_UNSIGNED, err.Error()
	default:
		out.State, out.Error = berthv1.SignatureState_SIGNATURE_STATE_UNKNOWN, err.Error()
	}
	return out
}
