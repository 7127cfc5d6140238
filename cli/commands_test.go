package cli

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/testpki"
)

func TestLogs(t *testing.T) {
	now := time.Now()
	stdout, stderr := berthv1.LogStream_LOG_STREAM_STDOUT, berthv1.LogStream_LOG_STREAM_STDERR
	f := &fakeCluster{
		nodes: testNodes(),
		tasks: testTasks(now),
		logs: []*berthv1.LogEntry{
			{TaskId: "task-web-1-0123456789", NodeId: "n1aaaaaaaaaaaaaaaa", Service: "web", Slot: 1, Stream: stdout, Line: []byte("hello\n")},
			{TaskId: "task-web-2-0123456789", NodeId: "n2bbbbbbbbbbbbbbbb", Service: "web", Slot: 2, Stream: stderr, Line: []byte("oops")},
		},
	}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "logs", "shop/web", "--tail", "10")
	if r.stdout != "web.1@node-1 | hello\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if r.stderr != "web.2@node-2 | oops\n" {
		t.Errorf("stderr = %q", r.stderr)
	}
	req := f.logReqs[0]
	if req.App != "shop" || req.Service != "web" || req.TaskId != "" || req.Tail != 10 || req.Follow {
		t.Errorf("Logs request = %v", req)
	}

	// One task (by slot, or by ID prefix): no prefix.
	for i, target := range []string{"shop/web.2", "task-web-2"} {
		r = mustRun(t, cfg, "logs", target)
		if r.stdout != "hello\n" || r.stderr != "oops\n" {
			t.Errorf("logs %s: stdout %q, stderr %q, want lines without prefix", target, r.stdout, r.stderr)
		}
		if got := f.logReqs[i+1]; got.TaskId != "task-web-2-0123456789" || got.Tail != -1 {
			t.Errorf("logs %s: request = %v, want task-web-2 with all lines", target, got)
		}
	}
	if r := run(t, cfg, nil, "logs", "task"); r.code == 0 || !strings.Contains(r.stderr, "matches 3 tasks") {
		t.Errorf("ambiguous prefix: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestImageImportStreamsHeaderThenChunks(t *testing.T) {
	f := &fakeCluster{
		nodes: testNodes(),
		importResp: &berthv1.ImportImageResponse{Results: []*berthv1.NodeImportResult{
			{NodeId: "n1aaaaaaaaaaaaaaaa", NodeName: "node-1", Images: []*berthv1.Image{{Name: "docker.io/library/app:1", Digest: "sha256:abcdef0123456789ffff"}}},
		}},
	}
	cfg := serve(t, f)
	archive := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/2/16) // 2.5 MiB
	path := filepath.Join(t.TempDir(), "app.tar")
	if err := os.WriteFile(path, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, cfg, "image", "import", path, "--node", "node-1")
	if !strings.Contains(r.stdout, "node-1: imported docker.io/library/app:1 (abcdef012345)") {
		t.Errorf("stdout = %q", r.stdout)
	}
	msgs := f.importMsgs
	if len(msgs) != 4 {
		t.Fatalf("server got %d messages, want a header and 3 chunks", len(msgs))
	}
	h := msgs[0].GetHeader()
	if h == nil || len(h.NodeIds) != 1 || h.NodeIds[0] != "n1aaaaaaaaaaaaaaaa" {
		t.Fatalf("first message = %v, want the header naming node-1", msgs[0])
	}
	var got []byte
	for i, m := range msgs[1:] {
		if m.GetHeader() != nil {
			t.Fatalf("message %d is a second header", i+1)
		}
		if i < 2 && len(m.GetChunk()) != importChunkSize {
			t.Errorf("chunk %d is %d bytes, want %d", i, len(m.GetChunk()), importChunkSize)
		}
		got = append(got, m.GetChunk()...)
	}
	if !bytes.Equal(got, archive) {
		t.Errorf("chunks carry %d bytes that differ from the %d-byte archive", len(got), len(archive))
	}
}

func TestImageImportFailure(t *testing.T) {
	f := &fakeCluster{
		nodes: testNodes(),
		importResp: &berthv1.ImportImageResponse{Results: []*berthv1.NodeImportResult{
			{NodeId: "n1aaaaaaaaaaaaaaaa", NodeName: "node-1", Images: []*berthv1.Image{{Name: "app:1", Digest: "sha256:aa"}}},
			{NodeId: "n2bbbbbbbbbbbbbbbb", NodeName: "node-2", Error: "disk full"},
		}},
	}
	cfg := serve(t, f)
	r := run(t, cfg, strings.NewReader("tar bytes"), "image", "import", "-")
	if r.code == 0 {
		t.Fatalf("exit 0, want failure when a node failed")
	}
	if !strings.Contains(r.stdout, "node-1: imported app:1") || !strings.Contains(r.stderr, "node-2: error: disk full") ||
		!strings.Contains(r.stderr, "berth: image import failed on 1 of 2 nodes") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if h := f.importMsgs[0].GetHeader(); h == nil || len(h.NodeIds) != 0 {
		t.Errorf("header = %v, want one naming no node (all ready nodes)", f.importMsgs[0])
	}
	if got := string(f.importMsgs[1].GetChunk()); got != "tar bytes" {
		t.Errorf("stdin chunk = %q", got)
	}
}

func TestImageLs(t *testing.T) {
	f := &fakeCluster{images: []*berthv1.NodeImages{
		{NodeId: "n1", NodeName: "node-1", Images: []*berthv1.Image{{Name: "app:1", Digest: "sha256:0123456789abcdef", Size: 3 << 20}}},
		{NodeId: "n2", NodeName: "node-2", Error: "unreachable"},
	}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "image", "ls")
	for _, w := range []string{"NODE", "IMAGE", "DIGEST", "SIZE", "node-1", "app:1", "0123456789ab", "3MiB"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("image ls lacks %q:\n%s", w, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "warning: node node-2: unreachable") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestDelete(t *testing.T) {
	f := &fakeCluster{removed: []string{"web", "db"}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "rm", "shop", "-n", "team-a")
	if r.stdout != "service web removed\nservice db removed\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if got := f.deleteReqs[0]; got.Namespace != "team-a" || got.App != "shop" {
		t.Errorf("request = %v", got)
	}
	f.removed = nil
	if r := run(t, cfg, nil, "delete", "gone"); r.code == 0 || !strings.Contains(r.stderr, `no app "gone"`) {
		t.Errorf("delete of a missing app: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestJoinToken(t *testing.T) {
	f := &fakeCluster{token: &berthv1.JoinTokenResponse{Token: "BERTH-TOKEN-1", ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "join-token", "--rotate", "--ttl", "1h")
	if !strings.Contains(r.stdout, "berth agent --join 127.0.0.1:") || !strings.Contains(r.stdout, "--token BERTH-TOKEN-1") {
		t.Errorf("stdout = %q", r.stdout)
	}
	if got := f.tokenReqs[0]; !got.Rotate || got.Ttl.AsDuration() != time.Hour {
		t.Errorf("request = %v", got)
	}
	if r := mustRun(t, cfg, "join-token", "-q"); r.stdout != "BERTH-TOKEN-1\n" {
		t.Errorf("-q stdout = %q", r.stdout)
	}
}

func TestVersion(t *testing.T) {
	cfg := serve(t, &fakeCluster{})
	r := mustRun(t, cfg, "version")
	if !strings.Contains(r.stdout, "Client:") || !strings.Contains(r.stdout, "v9.9.9") || !strings.Contains(r.stdout, "c-123") {
		t.Errorf("stdout = %q", r.stdout)
	}
}

func TestConnectionErrors(t *testing.T) {
	// A port nothing listens on: take one and release it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	down := writeConfig(t, addr, testpki.New(t))
	missing := filepath.Join(t.TempDir(), "absent")

	tests := []struct {
		name string
		cfg  string
		want string
	}{
		{"unreachable", down, "berth: cannot reach the server at " + addr + ": "},
		{"no config", missing, "berth: no Berth config at " + missing + ": start `berth dev` or `berth server`, or pass --config\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.cfg, nil, "get", "apps")
			if r.code == 0 || !strings.HasPrefix(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want it to start with %q", r.code, r.stderr, tt.want)
			}
			if strings.Contains(r.stderr, "rpc error") {
				t.Errorf("stderr shows a raw gRPC error: %q", r.stderr)
			}
		})
	}
	// version still answers for the client.
	r := run(t, down, nil, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "Unreachable: cannot reach the server") {
		t.Errorf("version with the server down: exit %d, stdout %q", r.code, r.stdout)
	}
}
