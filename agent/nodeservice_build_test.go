package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/build"
	"github.com/berthproject/berth/agent/session"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/containerdtest"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// buildStream is a NodeService Build stream fed from a slice, recording
// what the service sends.
type buildStream struct {
	grpc.ServerStream
	ctx  context.Context
	in   []*berthv1.BuildRequest
	sent []*berthv1.BuildEvent
}

func (s *buildStream) Context() context.Context { return s.ctx }

func (s *buildStream) Recv() (*berthv1.BuildRequest, error) {
	if len(s.in) == 0 {
		return nil, io.EOF
	}
	m := s.in[0]
	s.in = s.in[1:]
	return m, nil
}

func (s *buildStream) Send(e *berthv1.BuildEvent) error {
	s.sent = append(s.sent, e)
	return nil
}

// buildRequests is a header and a context tar of files, cut into chunks
// of at most 7 bytes so the service must join them.
func buildRequests(t *testing.T, h *berthv1.BuildHeader, files map[string]string) []*berthv1.BuildRequest {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	reqs := []*berthv1.BuildRequest{{Part: &berthv1.BuildRequest_Header{Header: h}}}
	for b := buf.Bytes(); len(b) > 0; {
		n := min(7, len(b))
		reqs = append(reqs, &berthv1.BuildRequest{Part: &berthv1.BuildRequest_ContextChunk{ContextChunk: b[:n]}})
		b = b[n:]
	}
	return reqs
}

// buildAgent is an agent with nothing but a builder for namespace ns.
func buildAgent(t *testing.T, cfg build.Config) *Agent {
	t.Helper()
	cfg.StateDir, cfg.Log = t.TempDir(), slog.New(slog.DiscardHandler)
	b, err := build.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &Agent{cfg: Config{Name: "node-a", Runtime: "containerd"}, creds: &session.Credentials{NodeID: "n1"}, builder: b}
}

func TestNodeServiceBuildRefused(t *testing.T) {
	good := &berthv1.BuildHeader{Tags: []string{"localhost/x:1"}}
	tests := []struct {
		name    string
		agent   func(t *testing.T) *Agent
		in      []*berthv1.BuildRequest
		code    codes.Code
		wantMsg string
	}{
		{
			name:    "fake runtime",
			agent:   func(*testing.T) *Agent { return &Agent{cfg: Config{Name: "node-a", Runtime: "fake"}} },
			in:      buildRequests(t, good, nil),
			code:    codes.FailedPrecondition,
			wantMsg: "runs the \"fake\" runtime",
		},
		{
			name:    "no header",
			agent:   func(t *testing.T) *Agent { return buildAgent(t, build.Config{}) },
			in:      buildRequests(t, good, nil)[1:],
			code:    codes.InvalidArgument,
			wantMsg: "starts with its header",
		},
		{
			name:    "no tag",
			agent:   func(t *testing.T) *Agent { return buildAgent(t, build.Config{}) },
			in:      buildRequests(t, &berthv1.BuildHeader{}, nil),
			code:    codes.InvalidArgument,
			wantMsg: "-t NAME",
		},
		{
			name:    "buildkitd missing",
			agent:   func(t *testing.T) *Agent { return buildAgent(t, build.Config{Binary: "/nonexistent/buildkitd"}) },
			in:      buildRequests(t, good, map[string]string{"Dockerfile": "FROM scratch\n"}),
			code:    codes.Unavailable,
			wantMsg: "make setup",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &nodeService{a: tt.agent(t)}
			err := s.Build(&buildStream{ctx: t.Context(), in: tt.in})
			if st, _ := status.FromError(err); st.Code() != tt.code || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Errorf("got %v, want code %v saying %q", err, tt.code, tt.wantMsg)
			}
		})
	}
}

func TestNodeServiceBuild(t *testing.T) {
	if _, err := os.Stat(build.DefaultContainerdAddress); err != nil {
		t.Skipf("containerd is not running (`make setup` starts it): %v", err)
	}
	if _, err := exec.LookPath(build.DefaultBinary); err != nil {
		t.Skipf("no buildkitd in PATH (`make setup` builds it into /usr/local/bin): %v", err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	ns := "berth-nodebuild-test-" + hex.EncodeToString(suffix)
	client, err := containerd.New(build.DefaultContainerdAddress, containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatalf("connect to containerd: %v", err)
	}
	t.Cleanup(func() {
		for _, n := range []string{ns, build.HistoryNamespace(ns)} {
			if err := containerdtest.CleanupNamespace(client, n); err != nil {
				t.Errorf("%v", err)
			}
		}
		client.Close()
	})
	s := &nodeService{a: buildAgent(t, build.Config{ContainerdNamespace: ns})}

	// FROM scratch needs no base image in the namespace.
	stream := &buildStream{ctx: t.Context(), in: buildRequests(t,
		&berthv1.BuildHeader{Tags: []string{"localhost/scratch:test"}},
		map[string]string{"Dockerfile": "FROM scratch\nCOPY hello.txt /\n", "hello.txt": "hello"})}
	if err := s.Build(stream); err != nil {
		t.Fatalf("build: %v", err)
	}
	if len(stream.sent) < 2 {
		t.Fatalf("sent %d events, want progress then a result", len(stream.sent))
	}
	for _, e := range stream.sent[:len(stream.sent)-1] {
		if len(e.GetStatus()) == 0 {
			t.Errorf("event %v before the last is not a progress update", e)
		}
	}
	res := stream.sent[len(stream.sent)-1].GetResult()
	if res.GetNodeId() != "n1" || res.GetNodeName() != "node-a" || res.GetImage() != "localhost/scratch:test" || res.GetDigest() == "" {
		t.Fatalf("result %v, want node n1 (node-a), image localhost/scratch:test and a digest", res)
	}
	img, err := client.ImageService().Get(namespaces.WithNamespace(t.Context(), ns), "localhost/scratch:test")
	if err != nil {
		t.Fatalf("built image in namespace %s: %v", ns, err)
	}
	if img.Target.Digest.String() != res.GetDigest() {
		t.Errorf("image digest %s, result says %s", img.Target.Digest, res.GetDigest())
	}

	broken := &buildStream{ctx: t.Context(), in: buildRequests(t,
		&berthv1.BuildHeader{Tags: []string{"localhost/broken:test"}},
		map[string]string{"Dockerfile": "FROM scratch\nCOPY hello.txt /\nBOGUS x\n", "hello.txt": "hello"})}
	err = s.Build(broken)
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "line 3") {
		t.Errorf("broken Dockerfile: got %v, want InvalidArgument naming line 3", err)
	}
}
