package cli

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// writeTree writes files (slash path to content; a "->" prefix makes a
// symbolic link to the rest) under a new directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarEntries lists a tar's entries as "name" for files and dirs, and
// "name -> target" for links, with file contents in the map.
func tarEntries(t *testing.T, b []byte) ([]string, map[string]string) {
	t.Helper()
	var names []string
	contents := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, contents
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		name := hdr.Name
		if hdr.Typeflag == tar.TypeSymlink {
			name += " -> " + hdr.Linkname
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want 0:0", hdr.Name, hdr.Uid, hdr.Gid)
		}
		names = append(names, name)
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		contents[hdr.Name] = string(data)
	}
}

func TestWriteContext(t *testing.T) {
	base := map[string]string{
		"Dockerfile":       "FROM scratch\n",
		"app/main.go":      "package main\n",
		"app/debug.log":    "noise",
		"docs/a.md":        "a",
		"docs/keep.md":     "keep",
		"tmp/x/y":          "y",
		"link":             "->app/main.go",
		"build/Dockerfile": "FROM scratch\n",
	}
	tests := []struct {
		name   string
		ignore string // .dockerignore; none when empty
		keep   string
		want   []string
	}{
		{
			name: "no .dockerignore: everything, relative",
			keep: "Dockerfile",
			want: []string{"Dockerfile", "app/", "app/debug.log", "app/main.go", "build/", "build/Dockerfile",
				"docs/", "docs/a.md", "docs/keep.md", "link -> app/main.go", "tmp/", "tmp/x/", "tmp/x/y"},
		},
		{
			name:   "patterns and directories",
			ignore: "# comment\n**/*.log\n/tmp\nlink\n",
			keep:   "Dockerfile",
			want: []string{".dockerignore", "Dockerfile", "app/", "app/main.go", "build/", "build/Dockerfile",
				"docs/", "docs/a.md", "docs/keep.md"},
		},
		{
			name:   "! exceptions inside an ignored directory",
			ignore: "docs\n!docs/keep.md\ntmp\nbuild\napp\nlink\n",
			keep:   "Dockerfile",
			want:   []string{".dockerignore", "Dockerfile", "docs/", "docs/keep.md"},
		},
		{
			name:   "the Dockerfile is sent even when ignored",
			ignore: "*\n",
			keep:   "Dockerfile",
			want:   []string{"Dockerfile"},
		},
		{
			name:   "a Dockerfile in an ignored directory, with its parent",
			ignore: "build\n.dockerignore\ntmp\napp\ndocs\nlink\n",
			keep:   "build/Dockerfile",
			want:   []string{"Dockerfile", "build/", "build/Dockerfile"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range base {
				files[k] = v
			}
			if tt.ignore != "" {
				files[".dockerignore"] = tt.ignore
			}
			dir := writeTree(t, files)
			var buf bytes.Buffer
			if err := writeContext(&buf, dir, tt.keep); err != nil {
				t.Fatal(err)
			}
			names, contents := tarEntries(t, buf.Bytes())
			slices.Sort(names)
			if !slices.Equal(names, tt.want) {
				t.Errorf("entries =\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(tt.want, "\n"))
			}
			if got := contents[tt.keep]; got != "FROM scratch\n" {
				t.Errorf("%s holds %q", tt.keep, got)
			}
		})
	}
}

func TestWriteContextBadIgnoreFile(t *testing.T) {
	dir := writeTree(t, map[string]string{"Dockerfile": "FROM scratch\n", ".dockerignore": "[\n"})
	err := writeContext(io.Discard, dir, "Dockerfile")
	if err == nil || !strings.Contains(err.Error(), ".dockerignore") {
		t.Fatalf("error = %v, want one naming .dockerignore", err)
	}
}

func TestBuildHeader(t *testing.T) {
	dir := writeTree(t, map[string]string{"ctx/Dockerfile": "FROM a\n", "ctx/sub/Dockerfile.dev": "FROM b\n", "outside/Dockerfile": "FROM c\n"})
	ctx := filepath.Join(dir, "ctx")
	tests := []struct {
		name     string
		r        buildRequest
		wantFile string
		wantBody string
		wantKeep string
		wantErr  string
	}{
		{name: "default Dockerfile", r: buildRequest{contextDir: ctx}, wantFile: "Dockerfile", wantKeep: "Dockerfile"},
		{name: "-f inside", r: buildRequest{contextDir: ctx, dockerfile: filepath.Join(ctx, "sub/Dockerfile.dev")}, wantFile: "sub/Dockerfile.dev", wantKeep: "sub/Dockerfile.dev"},
		{name: "-f outside goes as content", r: buildRequest{contextDir: ctx, dockerfile: filepath.Join(dir, "outside/Dockerfile")}, wantBody: "FROM c\n"},
		{name: "stdin", r: buildRequest{contextDir: ctx, dockerfileContent: []byte("FROM d\n")}, wantBody: "FROM d\n"},
		{name: "no Dockerfile", r: buildRequest{contextDir: filepath.Join(dir, "outside", "..")}, wantErr: "no Dockerfile at"},
		{name: "no context", r: buildRequest{contextDir: filepath.Join(dir, "nope")}, wantErr: "build context"},
		{name: "context is a file", r: buildRequest{contextDir: filepath.Join(ctx, "Dockerfile")}, wantErr: "is not a directory"},
		{name: "bad tag", r: buildRequest{contextDir: ctx, tags: []string{"Web:1"}}, wantErr: `tag "Web:1" is not a valid image name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, keep, err := tt.r.header()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Dockerfile != tt.wantFile || string(h.DockerfileContent) != tt.wantBody || keep != tt.wantKeep {
				t.Errorf("header dockerfile %q, content %q, keep %q; want %q, %q, %q", h.Dockerfile, h.DockerfileContent, keep, tt.wantFile, tt.wantBody, tt.wantKeep)
			}
		})
	}
}

func TestParseBuildArgs(t *testing.T) {
	t.Setenv("BERTH_TEST_ARG", "from-env")
	got, err := parseBuildArgs([]string{"A=1", "B=", "C=x=y", "BERTH_TEST_ARG", "BERTH_TEST_UNSET_ARG"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "", "C": "x=y", "BERTH_TEST_ARG": "from-env"}
	if len(got) != len(want) {
		t.Errorf("args = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("args[%s] = %q, want %q", k, got[k], v)
		}
	}
	if _, err := parseBuildArgs([]string{"=1"}); err == nil {
		t.Error("=1: no error")
	}
}

// statusBytes is a marshalled BuildKit status: one step, started and
// completed, with a line of output.
func statusBytes(t *testing.T, name string) []byte {
	t.Helper()
	now := timestamppb.New(time.Unix(1700000000, 0))
	b, err := proto.Marshal(&controlapi.StatusResponse{
		Vertexes: []*controlapi.Vertex{{Digest: "sha256:0123", Name: name, Started: now, Completed: now}},
		Logs:     []*controlapi.VertexLog{{Vertex: "sha256:0123", Stream: 1, Msg: []byte("hello from the step\n"), Timestamp: now}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeStatus(t *testing.T) {
	ss, err := decodeStatus(statusBytes(t, "[2/3] RUN echo hi"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss.Vertexes) != 1 || ss.Vertexes[0].Name != "[2/3] RUN echo hi" || ss.Vertexes[0].Completed == nil {
		t.Errorf("vertexes = %+v", ss.Vertexes)
	}
	if len(ss.Logs) != 1 || string(ss.Logs[0].Data) != "hello from the step\n" || ss.Logs[0].Stream != 1 {
		t.Errorf("logs = %+v", ss.Logs)
	}
	if _, err := decodeStatus([]byte{0xff, 0xff}); err == nil {
		t.Error("garbage decoded without error")
	}
}

func TestDisplayMode(t *testing.T) {
	for _, m := range progressModes {
		if _, err := displayMode(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, err := displayMode("fancy"); err == nil || !strings.Contains(err.Error(), "auto, tty or plain") {
		t.Errorf("fancy: error = %v", err)
	}
}

// buildFake is a cluster whose Build records each build and answers with
// a progress update and a result, or fails with err.
type buildFake struct {
	*fakeCluster
	err error

	mu       sync.Mutex
	headers  []*berthv1.BuildHeader
	contexts [][]byte
}

func (f *buildFake) Build(stream grpc.BidiStreamingServer[berthv1.BuildRequest, berthv1.BuildEvent]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(msg.GetContextChunk()) > buildChunkSize {
			return status.Error(codes.InvalidArgument, "chunk too large")
		}
		buf.Write(msg.GetContextChunk())
	}
	f.mu.Lock()
	f.headers = append(f.headers, first.GetHeader())
	f.contexts = append(f.contexts, buf.Bytes())
	f.mu.Unlock()
	now := timestamppb.Now()
	b, err := proto.Marshal(&controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{{Digest: "sha256:01", Name: "[1/1] FROM localhost/busybox", Started: now, Completed: now}}})
	if err != nil {
		return err
	}
	if err := stream.Send(&berthv1.BuildEvent{Event: &berthv1.BuildEvent_Status{Status: b}}); err != nil {
		return err
	}
	if f.err != nil {
		return f.err
	}
	image := ""
	if tags := first.GetHeader().GetTags(); len(tags) > 0 {
		image = tags[0]
	}
	return stream.Send(&berthv1.BuildEvent{Event: &berthv1.BuildEvent_Result{Result: &berthv1.BuildResult{
		NodeId: "n1", NodeName: "alpha", Image: image, Digest: "sha256:" + strings.Repeat("ab", 32),
	}}})
}

func TestBuildCommand(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 10<<10) // 160 KiB: several chunks
	dir := writeTree(t, map[string]string{"Dockerfile": "FROM localhost/busybox\n", "big.bin": big, ".dockerignore": "*.tmp\n", "x.tmp": "no"})
	f := &buildFake{fakeCluster: &fakeCluster{}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "build", "-t", "web:1", "-t", "web:latest", "--build-arg", "V=2", "--target", "final", "--no-cache", "--node", "alpha", "--progress", "plain", dir)
	if want := "built web:1@sha256:" + strings.Repeat("ab", 32) + " on node alpha\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "[1/1] FROM localhost/busybox") {
		t.Errorf("stderr lacks the progress:\n%s", r.stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := &berthv1.BuildHeader{Tags: []string{"web:1", "web:latest"}, Dockerfile: "Dockerfile", BuildArgs: map[string]string{"V": "2"}, Target: "final", NoCache: true, Node: "alpha"}
	if len(f.headers) != 1 || !proto.Equal(f.headers[0], want) {
		t.Fatalf("headers = %v, want %v", f.headers, want)
	}
	names, contents := tarEntries(t, f.contexts[0])
	slices.Sort(names)
	if !slices.Equal(names, []string{".dockerignore", "Dockerfile", "big.bin"}) || contents["big.bin"] != big {
		t.Errorf("context entries = %v (big.bin intact: %v)", names, contents["big.bin"] == big)
	}
}

func TestBuildCommandDockerfileFromStdin(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.txt": "a"})
	f := &buildFake{fakeCluster: &fakeCluster{}}
	cfg := serve(t, f)
	r := run(t, cfg, strings.NewReader("FROM scratch\nCOPY a.txt /\n"), "build", "-f", "-", "--progress", "plain", dir)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := string(f.headers[0].GetDockerfileContent()); got != "FROM scratch\nCOPY a.txt /\n" {
		t.Errorf("dockerfile content = %q", got)
	}
}

func TestBuildCommandErrors(t *testing.T) {
	dir := writeTree(t, map[string]string{"Dockerfile": "FROM scratch\n"})
	const buildkitMsg = "failed to solve: dockerfile parse error on line 2: unknown instruction: FROMM"
	tests := []struct {
		name  string
		args  []string
		stdin string
		fail  error
		want  string
	}{
		{name: "no context", args: []string{"build"}, want: "accepts 1 arg(s)"},
		{name: "bad progress", args: []string{"build", "--progress", "fancy", dir}, want: `unknown --progress "fancy"`},
		{name: "nameless build arg", args: []string{"build", "--build-arg", "=1", dir}, want: "has no name"},
		{name: "context from stdin", args: []string{"build", "-"}, want: "not supported"},
		{name: "empty stdin Dockerfile", args: []string{"build", "-f", "-", dir}, want: "held no Dockerfile"},
		{name: "missing Dockerfile", args: []string{"build", "-f", filepath.Join(dir, "nope"), dir}, want: "no Dockerfile at"},
		{name: "tty without a terminal", args: []string{"build", "--progress", "tty", dir}, want: "progress display"},
		{name: "build failure", args: []string{"build", "-t", "web:1", "--progress", "plain", dir}, fail: status.Error(codes.InvalidArgument, buildkitMsg), want: "build web:1: " + buildkitMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &buildFake{fakeCluster: &fakeCluster{}, err: tt.fail}
			cfg := serve(t, f)
			r := run(t, cfg, strings.NewReader(tt.stdin), tt.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant it to fail with %q", r.code, r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestBuildCommandGitContext(t *testing.T) {
	f := &buildFake{fakeCluster: &fakeCluster{}}
	cfg := serve(t, f)
	const url = "git://127.0.0.1:9418/web#main:app"
	mustRun(t, cfg, "build", "-t", "web:1", "-f", "docker/Dockerfile", "--progress", "plain", url)
	f.mu.Lock()
	defer f.mu.Unlock()
	want := &berthv1.BuildHeader{Tags: []string{"web:1"}, Dockerfile: "docker/Dockerfile", GitContext: url}
	if len(f.headers) != 1 || !proto.Equal(f.headers[0], want) {
		t.Fatalf("headers = %v, want %v", f.headers, want)
	}
	if names, _ := tarEntries(t, f.contexts[0]); len(names) != 0 {
		t.Errorf("a git context sent files: %v", names)
	}
}

func TestBuildCommandGitContextErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{name: "Dockerfile from stdin", args: []string{"build", "-f", "-", "https://h.example/web.git"}, stdin: "FROM scratch\n", want: "reads its Dockerfile from the repository"},
		{name: "Dockerfile outside", args: []string{"build", "-f", "../Dockerfile", "https://h.example/web.git"}, want: "is the Dockerfile's path in the repository"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &buildFake{fakeCluster: &fakeCluster{}}
			cfg := serve(t, f)
			r := run(t, cfg, strings.NewReader(tt.stdin), tt.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant it to fail with %q", r.code, r.stderr, tt.want)
			}
		})
	}
}
