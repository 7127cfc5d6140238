package build

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/containerdtest"
	"github.com/berthproject/berth/internal/testimage"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	controlapi "github.com/moby/buildkit/api/services/control"
)

const (
	testBusybox = "/usr/bin/busybox"
	baseRef     = "localhost/busybox:latest"
)

// multiStage exercises what a real Dockerfile uses: stages, ARG and ENV,
// a heredoc RUN, COPY --from and from the context, and HEALTHCHECK. Its
// last RUN checks the copied file, so a wrong result fails the build.
const multiStage = `FROM localhost/busybox:latest AS b
ARG GREETING=hello
RUN <<EOF
echo "$GREETING from a heredoc" > /greeting
EOF

FROM localhost/busybox:latest
ARG VERSION
ENV APP_VERSION=$VERSION
COPY --from=b /greeting /greeting
COPY files/hello.txt /hello.txt
RUN test "$(cat /greeting)" = "hi from a heredoc" && test "$(cat /hello.txt)" = "context file"
HEALTHCHECK --interval=5s CMD test -f /greeting
CMD ["cat", "/greeting"]
`

// broken has an unknown instruction on line 3.
const broken = `FROM localhost/busybox:latest
RUN true
BOGUS instruction
`

// testNamespace makes a containerd namespace holding the busybox base
// image, removed with everything in it when the test ends.
func testNamespace(t *testing.T) (*containerd.Client, string) {
	t.Helper()
	if _, err := os.Stat(DefaultContainerdAddress); err != nil {
		t.Skipf("containerd is not running (no %s; `make setup` starts it): %v", DefaultContainerdAddress, err)
	}
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		t.Skipf("no buildkitd in PATH (`make setup` builds it into /usr/local/bin): %v", err)
	}
	files, err := testimage.BusyboxFiles(testBusybox)
	if err != nil {
		t.Skipf("no busybox for the base image (apt-get install busybox-static): %v", err)
	}
	var archive bytes.Buffer
	if err := testimage.WriteOCIArchive(&archive, baseRef, files, testimage.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}); err != nil {
		t.Fatalf("base image: %v", err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	ns := "berth-build-test-" + hex.EncodeToString(suffix)
	client, err := containerd.New(DefaultContainerdAddress, containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatalf("connect to containerd: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range []string{ns, HistoryNamespace(ns)} {
			if err := containerdtest.CleanupNamespace(client, n); err != nil {
				t.Errorf("%v", err)
			}
		}
		client.Close()
	})
	ctx := namespaces.WithNamespace(t.Context(), ns)
	if _, err := client.Import(ctx, &archive); err != nil {
		t.Fatalf("import the base image: %v", err)
	}
	if _, err := client.ImageService().Get(ctx, baseRef); err != nil {
		t.Fatalf("base image after import: %v", err)
	}
	return client, ns
}

// newTestBuilder returns a Builder of its own buildkitd for namespace ns,
// stopped when the test ends (before the namespace is cleaned up).
func newTestBuilder(t *testing.T, ns string) *Builder {
	t.Helper()
	b, err := New(Config{ContainerdNamespace: ns, StateDir: t.TempDir(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close builder: %v", err)
		}
	})
	return b
}

// contextTar is a build context holding files.
func contextTar(t *testing.T, files map[string]string) *bytes.Reader {
	t.Helper()
	entries := make([]tar.Header, 0, len(files))
	for name, body := range files {
		entries = append(entries, tar.Header{Name: name, Typeflag: tar.TypeReg, Linkname: body})
	}
	return bytes.NewReader(tarOf(t, entries))
}

func TestBuild(t *testing.T) {
	client, ns := testNamespace(t)
	b := newTestBuilder(t, ns)
	ctx := namespaces.WithNamespace(t.Context(), ns)

	var updates []*controlapi.StatusResponse
	res, err := b.Build(t.Context(), &berthv1.BuildHeader{
		Tags:       []string{"localhost/built:test", "built:two"},
		Dockerfile: "docker/Dockerfile.app",
		BuildArgs:  map[string]string{"VERSION": "1.2.3", "GREETING": "hi"},
	}, contextTar(t, map[string]string{
		"docker/Dockerfile.app": multiStage,
		"files/hello.txt":       "context file",
	}), func(sr *controlapi.StatusResponse) error {
		updates = append(updates, sr)
		return nil
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if res.Image != "localhost/built:test" || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Errorf("result %+v, want image localhost/built:test and a sha256 digest", res)
	}
	if !slices.ContainsFunc(updates, func(sr *controlapi.StatusResponse) bool {
		return slices.ContainsFunc(sr.Vertexes, func(v *controlapi.Vertex) bool { return strings.Contains(v.Name, "COPY --from=b") })
	}) {
		t.Errorf("no progress update named the COPY --from=b step in %d updates", len(updates))
	}

	for _, name := range []string{"localhost/built:test", "docker.io/library/built:two"} {
		img, err := client.ImageService().Get(ctx, name)
		if err != nil {
			t.Fatalf("image %s in namespace %s: %v", name, ns, err)
		}
		if got := img.Target.Digest.String(); got != res.Digest {
			t.Errorf("image %s: digest %s, want the build's %s", name, got, res.Digest)
		}
	}
	img, err := client.GetImage(ctx, "localhost/built:test")
	if err != nil {
		t.Fatal(err)
	}
	unpacked, err := img.IsUnpacked(ctx, containerdtest.Snapshotter)
	if err != nil || !unpacked {
		t.Errorf("image unpacked for %s: %v (%v), want true", containerdtest.Snapshotter, unpacked, err)
	}
	desc, err := img.Config(ctx)
	if err != nil {
		t.Fatalf("image config: %v", err)
	}
	blob, err := content.ReadBlob(ctx, client.ContentStore(), desc)
	if err != nil {
		t.Fatalf("read image config: %v", err)
	}
	var config struct {
		Config struct {
			Env         []string
			Cmd         []string
			Healthcheck *testimage.HealthConfig
		} `json:"config"`
	}
	if err := json.Unmarshal(blob, &config); err != nil {
		t.Fatalf("decode image config: %v", err)
	}
	hc := config.Config.Healthcheck
	if hc == nil || !slices.Equal(hc.Test, []string{"CMD-SHELL", "test -f /greeting"}) || hc.Interval != 5*time.Second {
		t.Errorf("healthcheck %+v, want CMD-SHELL test -f /greeting every 5s", hc)
	}
	if !slices.Contains(config.Config.Env, "APP_VERSION=1.2.3") {
		t.Errorf("env %q, want APP_VERSION=1.2.3 from the build argument", config.Config.Env)
	}
	if !slices.Equal(config.Config.Cmd, []string{"cat", "/greeting"}) {
		t.Errorf("cmd %q, want [cat /greeting]", config.Config.Cmd)
	}

	// A build secret reaches RUN --mount=type=secret, and only there.
	secretFile := "FROM localhost/busybox:latest\nRUN --mount=type=secret,id=token test \"$(cat /run/secrets/token)\" = s3cret-token && touch /checked\n"
	for _, tc := range []struct {
		data string
		ok   bool
	}{{"s3cret-token", true}, {"wrong", false}} {
		_, err := b.Build(t.Context(), &berthv1.BuildHeader{
			Tags:              []string{"localhost/secret:test"},
			DockerfileContent: []byte(secretFile),
			Secrets:           []*berthv1.BuildSecret{{Id: "token", Data: []byte(tc.data)}},
			// A secret is not part of a step's cache key.
			NoCache: true,
		}, contextTar(t, nil), nil)
		if (err == nil) != tc.ok {
			t.Errorf("build with secret %q: %v, want success %v", tc.data, err, tc.ok)
		}
	}

	// A buildkitd that dies is restarted, and the next build waits for it.
	pid := b.daemon.currentPID()
	if pid == 0 {
		t.Fatal("no buildkitd process after a build")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill buildkitd: %v", err)
	}

	_, err = b.Build(t.Context(), &berthv1.BuildHeader{
		Tags:              []string{"localhost/broken:test"},
		DockerfileContent: []byte(broken),
	}, contextTar(t, nil), nil)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("broken Dockerfile: got %v, want an error wrapping ErrFailed", err)
	}
	t.Logf("a broken Dockerfile fails with: %v", err)
	for _, want := range []string{"line 3", "BOGUS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("broken Dockerfile: error %q does not mention %q", err, want)
		}
	}
	// A failing RUN says which line ran it, though its own text does not.
	_, err = b.Build(t.Context(), &berthv1.BuildHeader{
		Tags:              []string{"localhost/broken:test"},
		DockerfileContent: []byte("FROM localhost/busybox:latest\nRUN exit 3\n"),
	}, contextTar(t, nil), nil)
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "exit code: 3") || !strings.Contains(err.Error(), "Dockerfile:2") {
		t.Errorf("failing RUN: got %v, want an error wrapping ErrFailed with exit code: 3 and Dockerfile:2", err)
	}
	if runs := b.daemon.startCount(); runs < 2 {
		t.Errorf("buildkitd started %d times, want a restart after it was killed", runs)
	}
	if _, err := client.ImageService().Get(ctx, "localhost/broken:test"); err == nil {
		t.Error("a failed build left an image behind")
	}
}

func TestBuildRefused(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		header  *berthv1.BuildHeader
		want    error
		wantMsg string
	}{
		{
			name:    "no tag",
			header:  &berthv1.BuildHeader{},
			want:    ErrInvalid,
			wantMsg: "-t NAME",
		},
		{
			name:    "bad tag",
			header:  &berthv1.BuildHeader{Tags: []string{"Not A Tag"}},
			want:    ErrInvalid,
			wantMsg: `"Not A Tag"`,
		},
		{
			name:    "Dockerfile outside the context",
			header:  &berthv1.BuildHeader{Tags: []string{"x:1"}, Dockerfile: "../Dockerfile"},
			want:    ErrInvalid,
			wantMsg: "not inside the build context",
		},
		{
			name:    "bad build argument",
			header:  &berthv1.BuildHeader{Tags: []string{"x:1"}, BuildArgs: map[string]string{"A=B": "c"}},
			want:    ErrInvalid,
			wantMsg: "NAME=VALUE",
		},
		{
			name:    "git context that is no git URL",
			header:  &berthv1.BuildHeader{Tags: []string{"x:1"}, GitContext: "https://example.com/page"},
			want:    ErrInvalid,
			wantMsg: "not a git URL",
		},
		{
			name:    "git context with a Dockerfile sent",
			header:  &berthv1.BuildHeader{Tags: []string{"x:1"}, GitContext: "git://127.0.0.1:1/repo", DockerfileContent: []byte("FROM scratch\n")},
			want:    ErrInvalid,
			wantMsg: "reads its Dockerfile from the repository",
		},
		{
			name:    "no buildkitd binary",
			cfg:     Config{Binary: "/nonexistent/buildkitd"},
			header:  &berthv1.BuildHeader{Tags: []string{"x:1"}},
			want:    ErrUnavailable,
			wantMsg: "make setup",
		},
		{
			name:    "nothing at --buildkit-addr",
			cfg:     Config{Addr: "unix:///nonexistent/buildkitd.sock"},
			header:  &berthv1.BuildHeader{Tags: []string{"x:1"}},
			want:    ErrUnavailable,
			wantMsg: "--buildkit-addr",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.StateDir, cfg.Log = t.TempDir(), testLogger(t)
			b, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, err = b.Build(t.Context(), tt.header, contextTar(t, map[string]string{"Dockerfile": "FROM scratch\n"}), nil)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %v, want an error wrapping %v that says %q", err, tt.want, tt.wantMsg)
			}
		})
	}
}
