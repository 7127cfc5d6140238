package trust

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"github.com/berthproject/berth/internal/imagesig"
)

// newTrust runs a Trust on a real embedded etcd until the test ends.
func newTrust(t *testing.T) (*Trust, *store.Store) {
	t.Helper()
	s := storetest.New(t)
	kek, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Config{Store: s, KEK: kek, Log: slog.New(slog.DiscardHandler)})
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
	return tr, s
}

// pushRandom pushes a random image to a loopback in-memory registry and
// returns its repository and digest.
func pushRandom(t *testing.T, repo string) (string, string) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	full := strings.TrimPrefix(srv.URL, "http://") + "/" + repo
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag(full+":1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return full, d.String()
}

func TestKeysSealedAndPolicies(t *testing.T) {
	ctx := context.Background()
	tr, s := newTrust(t)

	k, err := tr.GenerateKey(ctx, "default", "release")
	if err != nil {
		t.Fatal(err)
	}
	if len(k.SealedPrivateKey) != 0 || !strings.HasPrefix(k.PublicKeyPem, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("answer %v", k)
	}
	// At rest the private key is sealed: the stored bytes do not parse
	// as a key, and open only with the KEK under this key's name.
	raw := &berthv1.SigningKey{}
	if err := s.GetMessage(ctx, store.SigningKeyKey("default", "release"), raw); err != nil {
		t.Fatal(err)
	}
	if _, err := imagesig.ParsePrivateKey(raw.SealedPrivateKey); err == nil {
		t.Fatal("the stored private key parses without unsealing")
	}
	if _, err := tr.cfg.KEK.Open(seal.KindSigningKey, seal.SecretName("other", "release"), raw.SealedPrivateKey); err == nil {
		t.Fatal("the sealed key opens under another namespace's name")
	}

	for _, tc := range []struct {
		name string
		err  error
		call func() error
	}{
		{"same name again", ErrExists, func() error { _, err := tr.GenerateKey(ctx, "default", "release"); return err }},
		{"bad key name", ErrInvalid, func() error { _, err := tr.GenerateKey(ctx, "default", "Bad Name"); return err }},
		{"import junk", ErrInvalid, func() error { _, err := tr.ImportKey(ctx, "default", "junk", []byte("junk")); return err }},
		{"policy with an unknown key", ErrNotFound, func() error {
			_, err := tr.SetPolicy(ctx, "default", "reg.example.com/team/*", []*berthv1.TrustKey{{Name: "nokey", Cluster: true}})
			return err
		}},
		{"policy with a malformed key file", ErrInvalid, func() error {
			_, err := tr.SetPolicy(ctx, "default", "reg.example.com/team/*", []*berthv1.TrustKey{{Name: "x.pub", PublicKeyPem: "junk"}})
			return err
		}},
		{"policy with a bad pattern", ErrInvalid, func() error {
			_, err := tr.SetPolicy(ctx, "default", "team/*", []*berthv1.TrustKey{{Name: "release", Cluster: true}})
			return err
		}},
		{"policy with no key", ErrInvalid, func() error { _, err := tr.SetPolicy(ctx, "default", "reg.example.com/team/*", nil); return err }},
		{"key of another namespace", ErrNotFound, func() error {
			_, err := tr.SetPolicy(ctx, "other", "reg.example.com/team/*", []*berthv1.TrustKey{{Name: "release", Cluster: true}})
			return err
		}},
		{"remove a policy that is not there", ErrNotFound, func() error { return tr.RemovePolicy(ctx, "default", "reg.example.com/x/*") }},
	} {
		if err := tc.call(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if ps := tr.Policies(""); len(ps) != 0 {
		t.Fatalf("refused requests stored policies %v", ps)
	}

	// An imported key (a cosign key pair, decrypted) works like a made one.
	_, priv, err := signature.NewDefaultECDSASignerVerifier()
	if err != nil {
		t.Fatal(err)
	}
	der, _ := cryptoutils.MarshalPrivateKeyToDER(priv)
	if _, err := tr.ImportKey(ctx, "default", "ci", der); err != nil {
		t.Fatal(err)
	}
	if keys := tr.Keys("default"); len(keys) != 2 || keys[0].Name != "ci" || keys[1].Name != "release" {
		t.Fatalf("Keys = %v", keys)
	}

	p, err := tr.SetPolicy(ctx, "default", "reg.example.com/team/*", []*berthv1.TrustKey{{Name: "release", Cluster: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Keys) != 1 || p.Keys[0].PublicKeyPem != k.PublicKeyPem {
		t.Fatalf("policy keys %v", p.Keys)
	}
	if err := tr.RemoveKey(ctx, "default", "release"); !errors.Is(err, ErrInUse) {
		t.Fatalf("removing a trusted key: %v", err)
	}
	if it := tr.ImageTrust("default", "reg.example.com/team/app:1"); it == nil || it.Policy != "reg.example.com/team/*" || len(it.Keys) != 1 {
		t.Fatalf("ImageTrust = %v", it)
	}
	if it := tr.ImageTrust("other", "reg.example.com/team/app:1"); it != nil {
		t.Fatalf("another namespace's ImageTrust = %v", it)
	}
	if err := tr.RemovePolicy(ctx, "default", "reg.example.com/team/*"); err != nil {
		t.Fatal(err)
	}
	if err := tr.RemoveKey(ctx, "default", "release"); err != nil {
		t.Fatal(err)
	}
}

// TestCheck signs with a cluster key through SignImage (the method
// automated builds call) and checks the verdicts a policy gives.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	tr, _ := newTrust(t)
	repo, digest := pushRandom(t, "team/app")
	host := repo[:strings.Index(repo, "/")]
	if _, err := tr.GenerateKey(ctx, "default", "release"); err != nil {
		t.Fatal(err)
	}
	image := repo + ":1"

	if v := tr.Check(ctx, "default", image, digest); v.Policy != "" || v.Err != nil {
		t.Fatalf("without a policy: %+v", v)
	}
	if _, err := tr.SetPolicy(ctx, "default", host+"/team/*", []*berthv1.TrustKey{{Name: "release", Cluster: true}}); err != nil {
		t.Fatal(err)
	}
	if v := tr.Check(ctx, "default", image, digest); !errors.Is(v.Err, imagesig.ErrUnsigned) || v.Policy != host+"/team/*" {
		t.Fatalf("unsigned: %+v", v)
	}
	if v := tr.Check(ctx, "default", image, ""); !errors.Is(v.Err, ErrNotPinned) {
		t.Fatalf("not pinned: %+v", v)
	}
	if err := tr.SignImage(ctx, "default", repo, digest, "nokey"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SignImage with an unknown key: %v", err)
	}
	if err := tr.SignImage(ctx, "default", repo, "sha256:abc", "release"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SignImage with a bad digest: %v", err)
	}
	if err := tr.SignImage(ctx, "default", repo, digest, "release"); err != nil {
		t.Fatal(err)
	}
	if v := tr.Check(ctx, "default", image, digest); v.Err != nil || v.Signer != "release" {
		t.Fatalf("signed: %+v", v)
	}
	sig := tr.SignatureOf(ctx, "default", image, digest)
	if sig.State != berthv1.SignatureState_SIGNATURE_STATE_SIGNED || sig.Signer != "release" {
		t.Fatalf("SignatureOf = %v", sig)
	}
	if sig := tr.SignatureOf(ctx, "other", image, digest); sig.State != berthv1.SignatureState_SIGNATURE_STATE_NOT_CHECKED {
		t.Fatalf("SignatureOf in a namespace without keys = %v", sig)
	}
	tags, err := tr.Tags(ctx, repo)
	if err != nil || len(tags) != 1 || tags[0].Digest != digest {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
}
