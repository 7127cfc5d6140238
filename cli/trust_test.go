package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const (
	signedDigest   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	unsignedDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	testPub        = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
)

// trustCluster answers the trusted-image calls and records them.
type trustCluster struct {
	berthv1.UnimplementedClusterServiceServer

	mu       sync.Mutex
	keys     []*berthv1.GenerateKeyRequest
	policies []*berthv1.SetTrustPolicyRequest
	verifies []*berthv1.VerifyImagesRequest
}

func (f *trustCluster) GenerateKey(_ context.Context, req *berthv1.GenerateKeyRequest) (*berthv1.GenerateKeyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, req)
	return &berthv1.GenerateKeyResponse{Key: &berthv1.SigningKey{Namespace: "default", Name: req.Name, PublicKeyPem: testPub}}, nil
}

func (f *trustCluster) SetTrustPolicy(ctx context.Context, req *berthv1.SetTrustPolicyRequest) (*berthv1.SetTrustPolicyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.policies = append(f.policies, req)
	_ = grpc.SetHeader(ctx, metadata.Pairs(warningHeader, "trust policy matches no service"))
	return &berthv1.SetTrustPolicyResponse{Policy: &berthv1.TrustPolicy{Namespace: "default", Pattern: req.Pattern, Keys: req.Keys}}, nil
}

func (f *trustCluster) GetService(context.Context, *berthv1.GetServiceRequest) (*berthv1.Service, error) {
	return &berthv1.Service{App: "shop", Name: "web", SpecVersion: 3,
		Spec: &berthv1.ServiceSpec{Image: "127.0.0.1:5000/shop/web:3", ImageDigest: unsignedDigest},
		Revisions: []*berthv1.ServiceRevision{
			{SpecVersion: 1, Spec: &berthv1.ServiceSpec{Image: "127.0.0.1:5000/shop/web:1", ImageDigest: signedDigest}},
			{SpecVersion: 2, Spec: &berthv1.ServiceSpec{Image: "127.0.0.1:5000/shop/web:2"}},
		}}, nil
}

func (f *trustCluster) VerifyImages(_ context.Context, req *berthv1.VerifyImagesRequest) (*berthv1.VerifyImagesResponse, error) {
	f.mu.Lock()
	f.verifies = append(f.verifies, req)
	f.mu.Unlock()
	resp := &berthv1.VerifyImagesResponse{}
	for _, im := range req.Images {
		v := &berthv1.ImageVerdict{Image: im.Image, Digest: im.Digest, State: berthv1.SignatureState_SIGNATURE_STATE_UNSIGNED}
		if im.Digest == signedDigest {
			v.State, v.Signer = berthv1.SignatureState_SIGNATURE_STATE_SIGNED, "release"
		}
		resp.Verdicts = append(resp.Verdicts, v)
	}
	return resp, nil
}

func TestRolloutHistorySignatures(t *testing.T) {
	f := &trustCluster{}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "rollout", "history", "shop/web", "-o", "json")
	var rows []historyRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("decode: %v\n%s", err, r.stdout)
	}
	want := []string{"signed by release", "not checked", "unsigned"}
	if len(rows) != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	for i, w := range want {
		if rows[i].Signature != w {
			t.Errorf("version %d: signature %q, want %q", rows[i].Version, rows[i].Signature, w)
		}
	}
	if rows[0].Digest != signedDigest || rows[2].Image != "127.0.0.1:5000/shop/web:3" {
		t.Errorf("rows = %+v", rows)
	}
	// Only digests are checked, each once.
	if len(f.verifies) != 1 || len(f.verifies[0].Images) != 2 {
		t.Errorf("verify requests = %v", f.verifies)
	}
	r = mustRun(t, cfg, "rollout", "history", "shop/web")
	if !strings.Contains(r.stdout, "signed by release") || !strings.Contains(r.stdout, " 111111111111 ") {
		t.Errorf("table:\n%s", r.stdout)
	}
}

func TestKeyGenerateWritesPublicKey(t *testing.T) {
	f := &trustCluster{}
	cfg := serve(t, f)
	dir := t.TempDir()
	t.Chdir(dir)
	r := mustRun(t, cfg, "key", "generate", "release")
	if !strings.Contains(r.stdout, "release.pub") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "release.pub")); err != nil || string(data) != testPub {
		t.Fatalf("release.pub = %q, %v", data, err)
	}
	// A second one would overwrite the file: refused before asking.
	r = run(t, cfg, nil, "key", "generate", "release")
	if r.code == 0 || !strings.Contains(r.stderr, "release.pub exists") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if len(f.keys) != 1 {
		t.Errorf("%d generate requests, want 1", len(f.keys))
	}
}

func TestTrustSetKeys(t *testing.T) {
	f := &trustCluster{}
	cfg := serve(t, f)
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(pubFile, []byte(testPub), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, cfg, "trust", "set", "127.0.0.1:5000/team/*", "--key", "release", "--key", pubFile)
	if !strings.Contains(r.stderr, "warning: trust policy matches no service") {
		t.Errorf("stderr = %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "keys release,file:cosign.pub") {
		t.Errorf("stdout = %q", r.stdout)
	}
	got := f.policies[0].Keys
	if len(got) != 2 || !got[0].Cluster || got[0].Name != "release" || got[0].PublicKeyPem != "" ||
		got[1].Cluster || got[1].Name != "cosign.pub" || got[1].PublicKeyPem != testPub {
		t.Errorf("keys sent = %v", got)
	}
	// A key file that is not there is refused here, and nothing is sent.
	r = run(t, cfg, nil, "trust", "set", "127.0.0.1:5000/team/*", "--key", filepath.Join(dir, "missing.pub"))
	if r.code == 0 || !strings.Contains(r.stderr, "missing.pub") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, cfg, nil, "trust", "set", "127.0.0.1:5000/team/*")
	if r.code != 2 || !strings.Contains(r.stderr, "--key is required") {
		t.Errorf("no key: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(f.policies) != 1 {
		t.Errorf("%d policy requests, want 1", len(f.policies))
	}
}

func TestLooksLikeKeyFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("plainfile", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"release", false},
		{"release.pub", true},
		{"./release", true},
		{"keys/cosign.key", true},
		{"key.pem", true},
		{"plainfile", true},
	} {
		if got := looksLikeKeyFile(tc.in); got != tc.want {
			t.Errorf("looksLikeKeyFile(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSignableTags(t *testing.T) {
	for _, tc := range []struct {
		tags []string
		ok   bool
	}{
		{[]string{"127.0.0.1:5000/team/app:1"}, true},
		{[]string{"registry.example.com/app:1", "localhost/app:2"}, true},
		{nil, false},
		{[]string{"app:1"}, false},
		{[]string{"team/app:1"}, false},
		{[]string{"127.0.0.1:5000/team/app:1", "app:dev"}, false},
	} {
		if err := signableTags(tc.tags); (err == nil) != tc.ok {
			t.Errorf("signableTags(%v) = %v, want ok=%v", tc.tags, err, tc.ok)
		}
	}
}
