package imagesig

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// testRegistry runs go-containerregistry's in-memory registry on
// loopback and pushes a random image to repo:tag, returning the
// repository and the image's digest.
func testRegistry(t *testing.T, repo, tag string) (string, string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	full := host + "/" + repo
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(full+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return full, d.String()
}

func newKey(t *testing.T, name string) (Key, []byte) {
	t.Helper()
	der, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return Key{Name: name, PEM: pub}, der
}

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	repo, digest := testRegistry(t, "team/app", "1")
	reg := Registry{Insecure: true}
	keyA, derA := newKey(t, "a")
	keyB, derB := newKey(t, "b")
	privA, err := ParsePrivateKey(derA)
	if err != nil {
		t.Fatal(err)
	}
	privB, err := ParsePrivateKey(derB)
	if err != nil {
		t.Fatal(err)
	}

	if got, err := Resolve(ctx, repo+":1", reg); err != nil || got != digest {
		t.Fatalf("Resolve = %q, %v; want %q", got, err, digest)
	}
	if _, err := Verify(ctx, repo, digest, []Key{keyA}, reg); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Verify of an unsigned image = %v, want ErrUnsigned", err)
	}
	tag, err := Sign(ctx, repo, digest, privA, reg)
	if err != nil {
		t.Fatal(err)
	}
	if want := repo + ":sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig"; tag != want {
		t.Fatalf("signature tag %q, want %q", tag, want)
	}
	if signer, err := Verify(ctx, repo, digest, []Key{keyB, keyA}, reg); err != nil || signer != "a" {
		t.Fatalf("Verify = %q, %v; want a", signer, err)
	}
	if _, err := Verify(ctx, repo, digest, []Key{keyB}, reg); !errors.Is(err, ErrNoValidSignature) {
		t.Fatalf("Verify with another key = %v, want ErrNoValidSignature", err)
	}
	// A second signature joins the first, as cosign adds them.
	if _, err := Sign(ctx, repo, digest, privB, reg); err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{keyA, keyB} {
		if signer, err := Verify(ctx, repo, digest, []Key{k}, reg); err != nil || signer != k.Name {
			t.Fatalf("Verify with %s after two signatures = %q, %v", k.Name, signer, err)
		}
	}
	// A signature does not carry over to another digest of the repository.
	other, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	otherRef, _ := name.NewTag(repo+":2", name.Insecure)
	if err := remote.Write(otherRef, other); err != nil {
		t.Fatal(err)
	}
	od, _ := other.Digest()
	if _, err := Verify(ctx, repo, od.String(), []Key{keyA}, reg); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Verify of the other digest = %v, want ErrUnsigned", err)
	}

	tags, err := Tags(ctx, repo, reg)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 2 || tags[0] != (Tag{"1", digest}) || tags[1] != (Tag{"2", od.String()}) {
		t.Fatalf("Tags = %v, want 1 and 2 without the signature tag", tags)
	}
}

// TestCosignLayout checks what Sign stores against cosign's format: the
// layer's media type, its annotation, and the simple signing payload.
func TestCosignLayout(t *testing.T) {
	ctx := context.Background()
	repo, digest := testRegistry(t, "app", "latest")
	reg := Registry{Insecure: true}
	_, der := newKey(t, "k")
	priv, _ := ParsePrivateKey(der)
	tag, err := Sign(ctx, repo, digest, priv, reg)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag(tag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
	l := m.Layers[0]
	if l.MediaType != PayloadMediaType || l.Annotations[SignatureAnnotation] == "" {
		t.Fatalf("layer %s with annotations %v, want %s and %s", l.MediaType, l.Annotations, PayloadMediaType, SignatureAnnotation)
	}
	body, err := readLayer(img, l)
	if err != nil {
		t.Fatal(err)
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Critical.Type != "cosign container image signature" || p.Critical.Image.DockerManifestDigest != digest || p.Critical.Identity.DockerReference != repo {
		t.Fatalf("payload %s", body)
	}
}

func TestParsePublicKeyRefusesJunk(t *testing.T) {
	for _, in := range []string{"", "not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted it", in)
		}
	}
}

func TestSignatureTagRefusesBadDigests(t *testing.T) {
	repo, _ := name.NewRepository("127.0.0.1:5000/app")
	for _, d := range []string{"", "sha256:abc", "sha512:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("g", 64)} {
		if _, err := SignatureTag(repo, d); err == nil {
			t.Errorf("SignatureTag(%q) accepted it", d)
		}
	}
}
