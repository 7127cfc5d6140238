package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const buildCompose = `
name: shop
services:
  web:
    build:
      context: ./web
      dockerfile: Dockerfile.web
      args: {V: "2"}
      target: final
  api:
    image: localhost/api:1
    build: ./api
  db:
    image: busybox
`

// buildProject writes buildCompose with the contexts it names and returns
// the Compose file's path.
func buildProject(t *testing.T) string {
	t.Helper()
	dir := writeTree(t, map[string]string{
		"compose.yaml":       buildCompose,
		"web/Dockerfile.web": "FROM scratch\n",
		"web/index.html":     "hi",
		"api/Dockerfile":     "FROM scratch\n",
	})
	return filepath.Join(dir, "compose.yaml")
}

func TestApplyBuildsFirst(t *testing.T) {
	file := buildProject(t)
	f := &buildFake{fakeCluster: &fakeCluster{applyResp: &berthv1.ApplyResponse{}}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "apply", "-f", file, "--progress", "plain")
	for _, want := range []string{"building service api from", "building service web from", "service web: built shop-web:latest@sha256:"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.headers) != 2 {
		t.Fatalf("%d builds, want 2", len(f.headers))
	}
	// Services are built in name order: api, then web.
	if h := f.headers[0]; h.Tags[0] != "localhost/api:1" || h.Dockerfile != "Dockerfile" {
		t.Errorf("api build header = %v", h)
	}
	if h := f.headers[1]; h.Tags[0] != "shop-web:latest" || h.Dockerfile != "Dockerfile.web" || h.Target != "final" || h.BuildArgs["V"] != "2" {
		t.Errorf("web build header = %v", h)
	}
	names, _ := tarEntries(t, f.contexts[1])
	if strings.Join(names, ",") != "Dockerfile.web,index.html" {
		t.Errorf("web context = %v", names)
	}
	if len(f.applyReqs) != 1 {
		t.Fatalf("%d applies, want 1", len(f.applyReqs))
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, svc := range f.applyReqs[0].Services {
		wantDigest := digest
		if svc.Name == "db" {
			wantDigest = ""
		}
		if got := svc.GetSpec().GetImageDigest(); got != wantDigest {
			t.Errorf("service %s: image_digest %q, want %q", svc.Name, got, wantDigest)
		}
		if svc.Name == "web" && (svc.Spec.Image != "shop-web:latest" || svc.Spec.GetBuild().GetContext() != "web") {
			t.Errorf("web spec: image %q, build %v", svc.Spec.Image, svc.Spec.GetBuild())
		}
	}
}

func TestApplyBuildFailureChangesNothing(t *testing.T) {
	file := buildProject(t)
	const msg = "failed to solve: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
	f := &buildFake{fakeCluster: &fakeCluster{applyResp: &berthv1.ApplyResponse{}}, err: status.Error(codes.Unknown, msg)}
	cfg := serve(t, f)
	r := run(t, cfg, nil, "apply", "-f", file, "--progress", "plain")
	if r.code == 0 || !strings.Contains(r.stderr, "build service api (localhost/api:1): "+msg+"; nothing was changed") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.headers) != 1 || len(f.applyReqs) != 0 {
		t.Errorf("%d builds and %d applies, want 1 and none", len(f.headers), len(f.applyReqs))
	}
}

func TestApplyDryRunBuildsNothing(t *testing.T) {
	file := buildProject(t)
	f := &buildFake{fakeCluster: &fakeCluster{applyResp: &berthv1.ApplyResponse{}}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "apply", "-f", file, "--dry-run")
	if want := "dry run: service web would be built from " + filepath.Join(filepath.Dir(file), "web") + " as shop-web:latest"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.headers) != 0 || len(f.applyReqs) != 1 || !f.applyReqs[0].DryRun {
		t.Fatalf("%d builds, applies %v; want none and one dry run", len(f.headers), f.applyReqs)
	}
	for _, svc := range f.applyReqs[0].Services {
		if svc.GetSpec().GetImageDigest() != "" {
			t.Errorf("service %s pinned to %s in a dry run", svc.Name, svc.Spec.ImageDigest)
		}
	}
}

func TestApplyBuildContextGone(t *testing.T) {
	file := buildProject(t)
	// The Dockerfile vanishes between load and build: the build reports it.
	if err := os.Remove(filepath.Join(filepath.Dir(file), "api", "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	f := &buildFake{fakeCluster: &fakeCluster{applyResp: &berthv1.ApplyResponse{}}}
	cfg := serve(t, f)
	r := run(t, cfg, nil, "apply", "-f", file)
	if r.code == 0 || !strings.Contains(r.stderr, "no Dockerfile at") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applyReqs) != 0 {
		t.Errorf("applied %v", f.applyReqs)
	}
}

func TestApplyBuildInlineDockerfileAndSecrets(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"compose.yaml": `
name: shop
services:
  web:
    build:
      context: .
      dockerfile_inline: |
        FROM scratch
        RUN --mount=type=secret,id=npm true
      secrets:
        - source: npm_token
          target: npm
        - token
secrets:
  npm_token: {environment: NPM_TOKEN}
  token: {file: ./token.txt}
`,
		"token.txt":  "file-token",
		"index.html": "hi",
	})
	t.Setenv("NPM_TOKEN", "env-token")
	f := &buildFake{fakeCluster: &fakeCluster{applyResp: &berthv1.ApplyResponse{}}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "apply", "-f", filepath.Join(dir, "compose.yaml"), "--progress", "plain", "--diff")
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.headers) != 1 || len(f.applyReqs) != 1 {
		t.Fatalf("%d builds and %d applies, want one each", len(f.headers), len(f.applyReqs))
	}
	h := f.headers[0]
	if string(h.DockerfileContent) != "FROM scratch\nRUN --mount=type=secret,id=npm true\n" || h.Dockerfile != "" {
		t.Errorf("header Dockerfile %q, content %q; want the inline one as content", h.Dockerfile, h.DockerfileContent)
	}
	want := []*berthv1.BuildSecret{{Id: "npm", Data: []byte("env-token")}, {Id: "token", Data: []byte("file-token")}}
	if len(h.Secrets) != len(want) || !proto.Equal(h.Secrets[0], want[0]) || !proto.Equal(h.Secrets[1], want[1]) {
		t.Errorf("header secrets = %v, want %v", h.Secrets, want)
	}
	req := f.applyReqs[0]
	if len(req.Secrets) != 0 {
		t.Errorf("Apply sends secrets %v that only the build uses", req.Secrets)
	}
	b := req.Services[0].GetSpec().GetBuild()
	if !slices.Equal(b.GetSecrets(), []string{"npm", "token"}) {
		t.Errorf("build spec secrets = %v, want their ids", b.GetSecrets())
	}
	if text := req.String() + r.stdout + r.stderr; strings.Contains(text, "env-token") || strings.Contains(text, "file-token") {
		t.Errorf("a build secret's data is in the apply request or the output:\n%s", text)
	}
}
