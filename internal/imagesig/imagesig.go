// Package imagesig reads and writes image signatures in cosign's format,
// so that what Berth signs `cosign verify --key` accepts and what cosign
// signs Berth verifies: a "simple signing" payload naming the manifest
// digest, signed with ECDSA P-256 over SHA-256, stored as a layer of an
// OCI image tagged sha256-<hex>.sig in the image's repository, with the
// base64 signature in the layer's dev.cosignproject.cosign/signature
// annotation (cosign 2.x's default when no transparency log is used).
//
// The control plane signs (its keys never leave it) and verifies at apply;
// agents verify again before they create a task's container. Both use
// this package, with their own Cache.
package imagesig

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Cosign's names for the parts of a signature.
const (
	// PayloadMediaType is the media type of a signature layer: the simple
	// signing payload.
	PayloadMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds a layer's base64 signature.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// signatureSuffix ends a signature tag.
	signatureSuffix = ".sig"
)

// Errors Verify returns, wrapped.
var (
	// ErrUnsigned: the registry holds no signature for the digest.
	ErrUnsigned = errors.New("no signature")
	// ErrNoValidSignature: signatures exist, none valid by a trusted key.
	ErrNoValidSignature = errors.New("no valid signature by a trusted key")
)

// Registry says how to reach an image's registry.
type Registry struct {
	// Username and Password authenticate, when set.
	Username, Password string
	// Insecure: the registry speaks plain HTTP.
	Insecure bool
	// Transport carries the requests; nil is the default.
	Transport http.RoundTripper
}

func (r Registry) options(ctx context.Context) []remote.Option {
	auth := authn.Anonymous
	if r.Username != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: r.Username, Password: r.Password})
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	}
	return opts
}

func (r Registry) nameOptions() []name.Option {
	var opts []name.Option
	if r.Insecure {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// Key is a public key trusted to sign, with the name users know it by.
type Key struct {
	Name string
	PEM  string
}

// ParsePublicKey reads a PEM public key as cosign writes it (PKIX). Only
// ECDSA keys are accepted: the keys cosign and Berth make.
func ParsePublicKey(pemText string) (*ecdsa.PublicKey, error) {
	if strings.TrimSpace(pemText) == "" {
		return nil, errors.New("the public key is empty")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(pemText))
	if err != nil {
		return nil, fmt.Errorf("not a PEM public key (want the PUBLIC KEY block `berth key generate` or `cosign generate-key-pair` writes): %w", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T public key; Berth verifies ECDSA keys (cosign's default)", pub)
	}
	return ec, nil
}

// GenerateKey makes an ECDSA P-256 key pair: the private key as PKCS#8
// DER, the public one as PEM.
func GenerateKey() (privateDER []byte, publicPEM string, err error) {
	_, priv, err := signature.NewECDSASignerVerifier(elliptic.P256(), nil, crypto.SHA256)
	if err != nil {
		return nil, "", fmt.Errorf("generating a key pair: %w", err)
	}
	der, err := cryptoutils.MarshalPrivateKeyToDER(priv)
	if err != nil {
		return nil, "", err
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, "", err
	}
	return der, string(pub), nil
}

// ParsePrivateKey reads what GenerateKey made.
func ParsePrivateKey(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBlock("PRIVATE KEY", der), cryptoutils.SkipPassword)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T private key, want ECDSA", k)
	}
	return ec, nil
}

func pemBlock(kind string, der []byte) []byte {
	return cryptoutils.PEMEncode(cryptoutils.PEMType(kind), der)
}

// Repository parses registry/repository (a tag or digest is dropped).
func Repository(image string, reg Registry) (name.Repository, error) {
	ref, err := name.ParseReference(image, reg.nameOptions()...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("image %q: %w", image, err)
	}
	return ref.Context(), nil
}

// SignatureTag is where cosign stores the signatures of digest in repo.
func SignatureTag(repo name.Repository, digest string) (name.Tag, error) {
	algo, hexPart, ok := strings.Cut(digest, ":")
	if !ok || algo != "sha256" || len(hexPart) != 64 {
		return name.Tag{}, fmt.Errorf("digest %q is not sha256:<64 hex digits>", digest)
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return name.Tag{}, fmt.Errorf("digest %q is not sha256:<64 hex digits>", digest)
	}
	return repo.Tag(algo + "-" + hexPart + signatureSuffix), nil
}

// Resolve asks image's registry for the manifest digest image names (its
// own digest when it names one).
func Resolve(ctx context.Context, image string, reg Registry) (string, error) {
	ref, err := name.ParseReference(image, reg.nameOptions()...)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", image, err)
	}
	if d, ok := ref.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	desc, err := remote.Head(ref, reg.options(ctx)...)
	if err != nil {
		return "", fmt.Errorf("resolving %s at its registry: %w", image, err)
	}
	return desc.Digest.String(), nil
}

// Payload is the simple signing payload cosign signs for digest of repo.
func Payload(repo name.Repository, digest string) ([]byte, error) {
	d, err := name.NewDigest(repo.Name()+"@"+digest, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("digest %q: %w", digest, err)
	}
	return payload.Cosign{Image: d}.MarshalJSON()
}

// Sign signs digest of repository with key and adds the signature to the
// signatures the registry holds for it (cosign's sha256-<hex>.sig tag),
// keeping the others. It returns the signature tag.
func Sign(ctx context.Context, repository, digest string, key *ecdsa.PrivateKey, reg Registry) (string, error) {
	repo, err := Repository(repository, reg)
	if err != nil {
		return "", err
	}
	tag, err := SignatureTag(repo, digest)
	if err != nil {
		return "", err
	}
	body, err := Payload(repo, digest)
	if err != nil {
		return "", err
	}
	signer, err := signature.LoadECDSASigner(key, crypto.SHA256)
	if err != nil {
		return "", err
	}
	sig, err := signer.SignMessage(bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("signing %s@%s: %w", repo.Name(), digest, err)
	}
	b64 := base64.StdEncoding.EncodeToString(sig)

	opts := reg.options(ctx)
	base, err := remote.Image(tag, opts...)
	switch {
	case isNotFound(err):
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	case err != nil:
		return "", fmt.Errorf("reading the signatures of %s@%s: %w", repo.Name(), digest, err)
	}
	layer := static.NewLayer(body, PayloadMediaType)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       layer,
		Annotations: map[string]string{SignatureAnnotation: b64},
		MediaType:   PayloadMediaType,
	})
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return "", fmt.Errorf("storing the signature of %s@%s at %s: %w", repo.Name(), digest, tag, err)
	}
	return tag.String(), nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusNotFound
	}
	return false
}

// maxPayload bounds a signature layer read from a registry.
const maxPayload = 1 << 20

// Verify checks that the registry holds a signature of digest of
// repository, in cosign's format, valid by one of keys; it returns the
// name of the first key that signed. Errors wrap ErrUnsigned or
// ErrNoValidSignature when the registry answered; others are the
// registry's.
func Verify(ctx context.Context, repository, digest string, keys []Key, reg Registry) (string, error) {
	if len(keys) == 0 {
		return "", errors.New("no key to verify with")
	}
	verifiers := make([]signature.Verifier, len(keys))
	for i, k := range keys {
		pub, err := ParsePublicKey(k.PEM)
		if err != nil {
			return "", fmt.Errorf("key %s: %w", k.Name, err)
		}
		v, err := signature.LoadECDSAVerifier(pub, crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("key %s: %w", k.Name, err)
		}
		verifiers[i] = v
	}
	repo, err := Repository(repository, reg)
	if err != nil {
		return "", err
	}
	tag, err := SignatureTag(repo, digest)
	if err != nil {
		return "", err
	}
	opts := reg.options(ctx)
	img, err := remote.Image(tag, opts...)
	if isNotFound(err) {
		return "", fmt.Errorf("%w: %s has no %s", ErrUnsigned, repo.Name(), tag.TagStr())
	}
	if err != nil {
		return "", fmt.Errorf("reading the signatures of %s@%s: %w", repo.Name(), digest, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return "", fmt.Errorf("reading the signatures of %s@%s: %w", repo.Name(), digest, err)
	}
	checked := 0
	for _, l := range m.Layers {
		b64, ok := l.Annotations[SignatureAnnotation]
		if !ok || l.MediaType != PayloadMediaType {
			continue
		}
		checked++
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		body, err := readLayer(img, l)
		if err != nil {
			return "", fmt.Errorf("reading a signature of %s@%s: %w", repo.Name(), digest, err)
		}
		if !claimsDigest(body, digest) {
			continue
		}
		for i, v := range verifiers {
			if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(body)) == nil {
				return keys[i].Name, nil
			}
		}
	}
	if checked == 0 {
		return "", fmt.Errorf("%w: %s holds no cosign signature", ErrUnsigned, tag.String())
	}
	return "", fmt.Errorf("%w: none of the %d signatures in %s is by %s", ErrNoValidSignature, checked, tag.String(), keyNames(keys))
}

func keyNames(keys []Key) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// readLayer reads the payload of a signature layer and checks it against
// its digest.
func readLayer(img v1.Image, desc v1.Descriptor) ([]byte, error) {
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxPayload+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxPayload {
		return nil, fmt.Errorf("signature payload over %d bytes", maxPayload)
	}
	sum := sha256.Sum256(body)
	if "sha256:"+hex.EncodeToString(sum[:]) != desc.Digest.String() {
		return nil, fmt.Errorf("signature payload does not match its digest %s", desc.Digest)
	}
	return body, nil
}

// claimsDigest reports whether a simple signing payload is about digest,
// as cosign checks it.
func claimsDigest(body []byte, digest string) bool {
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(body, &p); err != nil {
		return false
	}
	return p.Critical.Type == payload.CosignSignatureType && p.Critical.Image.DockerManifestDigest == digest
}

// Tag is one tag of a repository and the manifest digest it points to.
type Tag struct {
	Name, Digest string
}

// Tags lists the tags of repository and their digests; cosign's
// signature tags are left out.
func Tags(ctx context.Context, repository string, reg Registry) ([]Tag, error) {
	repo, err := name.NewRepository(repository, reg.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", repository, err)
	}
	opts := reg.options(ctx)
	names, err := remote.List(repo, opts...)
	if err != nil {
		return nil, fmt.Errorf("listing the tags of %s: %w", repo.Name(), err)
	}
	sort.Strings(names)
	var out []Tag
	for _, n := range names {
		if strings.HasSuffix(n, signatureSuffix) && strings.HasPrefix(n, "sha256-") {
			continue
		}
		desc, err := remote.Head(repo.Tag(n), opts...)
		if err != nil {
			return nil, fmt.Errorf("resolving %s:%s: %w", repo.Name(), n, err)
		}
		out = append(out, Tag{Name: n, Digest: desc.Digest.String()})
	}
	return out, nil
}

// Refusal is the words every refusal of an unverified image uses, on the
// server (apply, scale, rollback, restart) and on the node, so that users
// read the same sentence wherever the check caught it.
func Refusal(image, digest, policy string, why error) string {
	if digest == "" {
		digest = "not pinned"
	}
	return fmt.Sprintf("image %s (digest %s) is refused by trust policy %q: %v; sign it with `berth sign %s --key KEY` using a key the policy trusts (`berth trust ls`)", image, digest, policy, why, image)
}
