// Package trust keeps the cluster's trusted-image state: signing keys
// (their private halves sealed with the key-encryption key; they never
// leave the control plane), trust policies per namespace and repository
// pattern, and the checks built on them: signing an image in its registry
// in cosign's format, and verifying that an image a service would run is
// signed by a key its namespace's policy trusts. Keys and policies are
// followed by store mirrors, so a check reads no etcd.
package trust

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/internal/imagesig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Errors the methods return, wrapped; the API server maps them to codes.
var (
	// ErrInvalid: the request is malformed (a name, a pattern, a key file).
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: no such key or policy.
	ErrNotFound = errors.New("not found")
	// ErrExists: a key of that name exists.
	ErrExists = errors.New("already exists")
	// ErrInUse: a policy trusts the key.
	ErrInUse = errors.New("in use")
	// ErrNoKEK: this server cannot seal or open private keys.
	ErrNoKEK = errors.New("this server has no key-encryption key to seal signing keys with")
	// ErrRegistry: the image's registry could not be asked.
	ErrRegistry = errors.New("registry")
)

// Config holds what Trust needs.
type Config struct {
	Store *store.Store
	// KEK seals the private keys; nil refuses keys and signing.
	KEK *seal.Key
	// Registries gives the registry credentials (and insecure settings)
	// to reach images' registries with; nil reaches them anonymously over
	// HTTPS.
	Registries *registry.Credentials
	// Cache keeps verifications; nil makes one.
	Cache *imagesig.Cache
	Log   *slog.Logger
}

// Trust is the cluster's signing keys and trust policies.
type Trust struct {
	cfg      Config
	log      *slog.Logger
	keys     *store.Mirror[*berthv1.SigningKey]
	policies *store.Mirror[*berthv1.TrustPolicy]
	cache    *imagesig.Cache
}

// New returns a Trust; Run keeps it current.
func New(cfg Config) *Trust {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Cache == nil {
		cfg.Cache = imagesig.NewCache(imagesig.WithRole("server"))
	}
	return &Trust{
		cfg:      cfg,
		log:      cfg.Log,
		keys:     store.NewMirror(cfg.Store, store.SigningKeysPrefix, func() *berthv1.SigningKey { return &berthv1.SigningKey{} }, nil, cfg.Log),
		policies: store.NewMirror(cfg.Store, store.TrustPoliciesPrefix, func() *berthv1.TrustPolicy { return &berthv1.TrustPolicy{} }, nil, cfg.Log),
		cache:    cfg.Cache,
	}
}

// Run follows the keys and policies until ctx ends.
func (t *Trust) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- t.keys.Run(ctx) }()
	go func() { errc <- t.policies.Run(ctx) }()
	err := errors.Join(<-errc, <-errc)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Collector counts the server's verifications
// (berth_image_verifications_total).
func (t *Trust) Collector() prometheus.Collector { return t.cache.Collector() }

// WaitSynced waits until keys and policies were first read.
func (t *Trust) WaitSynced(ctx context.Context) error {
	if err := t.keys.WaitSynced(ctx); err != nil {
		return err
	}
	return t.policies.WaitSynced(ctx)
}

// GenerateKey makes an ECDSA P-256 key pair named name in namespace and
// stores it, the private key sealed. The answer has no private key.
func (t *Trust) GenerateKey(ctx context.Context, namespace, name string) (*berthv1.SigningKey, error) {
	if err := t.checkNewKey(namespace, name); err != nil {
		return nil, err
	}
	der, pub, err := imagesig.GenerateKey()
	if err != nil {
		return nil, err
	}
	defer clear(der)
	return t.storeKey(ctx, namespace, name, der, pub)
}

// ImportKey stores an ECDSA private key made elsewhere (PKCS#8 DER, as
// the CLI decrypts it from a cosign key file) as key name of namespace.
func (t *Trust) ImportKey(ctx context.Context, namespace, name string, der []byte) (*berthv1.SigningKey, error) {
	if err := t.checkNewKey(namespace, name); err != nil {
		return nil, err
	}
	priv, err := imagesig.ParsePrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: key %s: not an ECDSA private key in PKCS#8 (%v); import the cosign.key that `cosign generate-key-pair` wrote", ErrInvalid, name, err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, err
	}
	return t.storeKey(ctx, namespace, name, der, string(pub))
}

func (t *Trust) checkNewKey(namespace, name string) error {
	if err := validation.ValidateName("key", name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if t.cfg.KEK == nil {
		return ErrNoKEK
	}
	if _, ok := t.key(namespace, name); ok {
		return fmt.Errorf("key %s of namespace %s %w; remove it first with `berth key rm %s` (signatures it made then no longer verify)", name, namespace, ErrExists, name)
	}
	return nil
}

// storeKey seals der and stores it with its public key pub.
func (t *Trust) storeKey(ctx context.Context, namespace, name string, der []byte, pub string) (*berthv1.SigningKey, error) {
	sealed, err := t.cfg.KEK.Seal(seal.KindSigningKey, seal.SecretName(namespace, name), der)
	if err != nil {
		return nil, err
	}
	now := timestamppb.Now()
	k := &berthv1.SigningKey{
		Meta:             &berthv1.Meta{Id: store.NewID(), CreatedAt: now, UpdatedAt: now},
		Namespace:        namespace,
		Name:             name,
		PublicKeyPem:     pub,
		SealedPrivateKey: sealed,
	}
	var txn store.Txn
	txn.Create(store.SigningKeyKey(namespace, name), k)
	rev, err := t.cfg.Store.Commit(ctx, &txn)
	if errors.Is(err, store.ErrConflict) {
		return nil, fmt.Errorf("key %s of namespace %s %w", name, namespace, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("storing key %s: %w", name, err)
	}
	if err := t.keys.WaitRevision(ctx, rev); err != nil {
		return nil, err
	}
	t.log.Info("signing key stored", "namespace", namespace, "key", name)
	return redactKey(k), nil
}

func redactKey(k *berthv1.SigningKey) *berthv1.SigningKey {
	out := proto.Clone(k).(*berthv1.SigningKey)
	out.SealedPrivateKey = nil
	return out
}

func keyName(namespace, name string) string { return namespace + "/" + name }

func (t *Trust) key(namespace, name string) (*berthv1.SigningKey, bool) {
	return t.keys.Get(keyName(namespace, name))
}

// Keys lists the keys of namespace ("" for every namespace), without
// their private halves.
func (t *Trust) Keys(namespace string) []*berthv1.SigningKey {
	var out []*berthv1.SigningKey
	for _, k := range t.keys.List() {
		if namespace == "" || k.Namespace == namespace {
			out = append(out, redactKey(k))
		}
	}
	slices.SortFunc(out, func(a, b *berthv1.SigningKey) int {
		return strings.Compare(keyName(a.Namespace, a.Name), keyName(b.Namespace, b.Name))
	})
	return out
}

// PublicKey returns the public key of a cluster key, for `--key NAME`.
func (t *Trust) PublicKey(namespace, name string) (string, error) {
	k, ok := t.key(namespace, name)
	if !ok {
		return "", t.unknownKey(namespace, name)
	}
	return k.PublicKeyPem, nil
}

func (t *Trust) unknownKey(namespace, name string) error {
	return fmt.Errorf("key %q %w in namespace %s; `berth key ls --namespace %s` lists its keys, `berth key generate %s` makes one", name, ErrNotFound, namespace, namespace, name)
}

// RemoveKey removes a key no policy trusts.
func (t *Trust) RemoveKey(ctx context.Context, namespace, name string) error {
	k, ok := t.key(namespace, name)
	if !ok {
		return t.unknownKey(namespace, name)
	}
	var users []string
	for _, p := range t.policies.List() {
		if p.Namespace != namespace {
			continue
		}
		for _, pk := range p.Keys {
			if pk.Cluster && pk.Name == name {
				users = append(users, p.Pattern)
			}
		}
	}
	if len(users) > 0 {
		slices.Sort(users)
		return fmt.Errorf("key %s is %w by trust policies %s; remove them or set them with other keys first", name, ErrInUse, strings.Join(users, ", "))
	}
	var txn store.Txn
	txn.Delete(store.SigningKeyKey(namespace, name), k.GetMeta().GetVersion())
	rev, err := t.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return fmt.Errorf("removing key %s: %w", name, err)
	}
	t.log.Info("signing key removed", "namespace", namespace, "key", name)
	return t.keys.WaitRevision(ctx, rev)
}

// registryOf returns how to reach the registry of image.
func (t *Trust) registryOf(image string) (imagesig.Registry, error) {
	host, err := registry.HostOf(image)
	if err != nil {
		return imagesig.Registry{}, fmt.Errorf("%w: image %q: %v", ErrInvalid, image, err)
	}
	if t.cfg.Registries == nil {
		return imagesig.Registry{}, nil
	}
	reg := imagesig.Registry{Insecure: t.cfg.Registries.Insecure(host)}
	user, secret, ok, err := t.cfg.Registries.Lookup(host)
	if err != nil {
		return imagesig.Registry{}, err
	}
	if ok {
		reg.Username, reg.Password = user, secret
	}
	return reg, nil
}

// Resolve returns the repository of image and the manifest digest it
// names or its registry resolves it to.
func (t *Trust) Resolve(ctx context.Context, image string) (repository, digest string, err error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return "", "", fmt.Errorf("%w: image %q: %v", ErrInvalid, image, err)
	}
	reg, err := t.registryOf(image)
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, registry.RemoteTimeout)
	defer cancel()
	digest, err = imagesig.Resolve(ctx, ref.String(), reg)
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrRegistry, err)
	}
	return ref.Repository(), digest, nil
}

// Sign resolves image to its digest in its registry, signs it with the
// cluster key of namespace and stores the signature there. It returns
// the repository, the digest and where the signature went.
func (t *Trust) Sign(ctx context.Context, namespace, image, key string) (repository, digest, sigTag string, err error) {
	if _, ok := t.key(namespace, key); !ok {
		return "", "", "", t.unknownKey(namespace, key)
	}
	repository, digest, err = t.Resolve(ctx, image)
	if err != nil {
		return "", "", "", err
	}
	sigTag, err = t.sign(ctx, namespace, repository, digest, key)
	return repository, digest, sigTag, err
}

// SignImage signs digest of image (a repository, like
// 127.0.0.1:5000/team/app) with the cluster key named key of namespace,
// and stores the signature in the image's registry in cosign's format.
// Automated builds call it for what they push.
func (t *Trust) SignImage(ctx context.Context, namespace, image, digest, key string) error {
	ref, err := imageref.Parse(image)
	if err != nil {
		return fmt.Errorf("%w: image %q: %v", ErrInvalid, image, err)
	}
	if err := imageref.ValidDigest(digest); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	_, err = t.sign(ctx, namespace, ref.Repository(), digest, key)
	return err
}

// SignWith resolves image and signs its digest with der, a private key
// the cluster does not keep (PKCS#8 DER), which it then forgets.
func (t *Trust) SignWith(ctx context.Context, namespace, image string, der []byte) (repository, digest, sigTag string, err error) {
	priv, err := imagesig.ParsePrivateKey(der)
	if err != nil {
		return "", "", "", fmt.Errorf("%w: the private key is not an ECDSA key in PKCS#8 (%v); give a cosign.key and its password in $COSIGN_PASSWORD", ErrInvalid, err)
	}
	repository, digest, err = t.Resolve(ctx, image)
	if err != nil {
		return "", "", "", err
	}
	sigTag, err = t.signWith(ctx, namespace, repository, digest, "a key file", priv)
	return repository, digest, sigTag, err
}

func (t *Trust) sign(ctx context.Context, namespace, repository, digest, key string) (string, error) {
	k, ok := t.key(namespace, key)
	if !ok {
		return "", t.unknownKey(namespace, key)
	}
	if t.cfg.KEK == nil {
		return "", ErrNoKEK
	}
	der, err := t.cfg.KEK.Open(seal.KindSigningKey, seal.SecretName(namespace, key), k.SealedPrivateKey)
	if err != nil {
		return "", fmt.Errorf("opening key %s: %w", key, err)
	}
	priv, err := imagesig.ParsePrivateKey(der)
	clear(der)
	if err != nil {
		return "", fmt.Errorf("key %s: %w", key, err)
	}
	return t.signWith(ctx, namespace, repository, digest, key, priv)
}

func (t *Trust) signWith(ctx context.Context, namespace, repository, digest, key string, priv *ecdsa.PrivateKey) (string, error) {
	reg, err := t.registryOf(repository)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, registry.RemoteTimeout)
	defer cancel()
	tag, err := imagesig.Sign(ctx, repository, digest, priv, reg)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrRegistry, err)
	}
	t.log.Info("image signed", "namespace", namespace, "image", repository, "digest", digest, "key", key)
	return tag, nil
}

// Tags lists the tags of repository and their digests, from its registry.
func (t *Trust) Tags(ctx context.Context, repository string) ([]imagesig.Tag, error) {
	reg, err := t.registryOf(repository)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*registry.RemoteTimeout)
	defer cancel()
	tags, err := imagesig.Tags(ctx, repository, reg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRegistry, err)
	}
	return tags, nil
}
