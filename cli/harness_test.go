package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
	"github.com/berthproject/berth/internal/testpki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCluster is a ClusterService that answers from its fields and records
// the requests it gets.
type fakeCluster struct {
	berthv1.UnimplementedClusterServiceServer

	nodes      []*berthv1.Node
	tasks      []*berthv1.Task
	services   []*berthv1.ServiceSummary
	apps       []*berthv1.App
	images     []*berthv1.NodeImages
	logs       []*berthv1.LogEntry
	applyResp  *berthv1.ApplyResponse
	applyErr   error
	importResp *berthv1.ImportImageResponse
	removed    []string
	token      *berthv1.JoinTokenResponse

	mu          sync.Mutex
	taskReqs    []*berthv1.ListTasksRequest
	applyReqs   []*berthv1.ApplyRequest
	importMsgs  []*berthv1.ImportImageRequest
	logReqs     []*berthv1.LogsRequest
	tokenReqs   []*berthv1.JoinTokenRequest
	deleteReqs  []*berthv1.DeleteAppRequest
	serviceReqs []*berthv1.ListServicesRequest
}

func (f *fakeCluster) record(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeCluster) ListNodes(context.Context, *berthv1.ListNodesRequest) (*berthv1.ListNodesResponse, error) {
	return &berthv1.ListNodesResponse{Nodes: f.nodes}, nil
}

func (f *fakeCluster) ListTasks(_ context.Context, req *berthv1.ListTasksRequest) (*berthv1.ListTasksResponse, error) {
	f.record(func() { f.taskReqs = append(f.taskReqs, req) })
	var out []*berthv1.Task
	for _, t := range f.tasks {
		if (req.App == "" || t.App == req.App) && (req.Service == "" || t.Service == req.Service) &&
			(req.NodeId == "" || t.NodeId == req.NodeId) {
			out = append(out, t)
		}
	}
	return &berthv1.ListTasksResponse{Tasks: out}, nil
}

func (f *fakeCluster) ListServices(_ context.Context, req *berthv1.ListServicesRequest) (*berthv1.ListServicesResponse, error) {
	f.record(func() { f.serviceReqs = append(f.serviceReqs, req) })
	return &berthv1.ListServicesResponse{Services: f.services}, nil
}

func (f *fakeCluster) ListApps(context.Context, *berthv1.ListAppsRequest) (*berthv1.ListAppsResponse, error) {
	return &berthv1.ListAppsResponse{Apps: f.apps}, nil
}

func (f *fakeCluster) ListImages(context.Context, *berthv1.ListImagesRequest) (*berthv1.ListImagesResponse, error) {
	return &berthv1.ListImagesResponse{Nodes: f.images}, nil
}

func (f *fakeCluster) Apply(_ context.Context, req *berthv1.ApplyRequest) (*berthv1.ApplyResponse, error) {
	f.record(func() { f.applyReqs = append(f.applyReqs, req) })
	if f.applyErr != nil {
		return nil, f.applyErr
	}
	return f.applyResp, nil
}

func (f *fakeCluster) DeleteApp(_ context.Context, req *berthv1.DeleteAppRequest) (*berthv1.DeleteAppResponse, error) {
	f.record(func() { f.deleteReqs = append(f.deleteReqs, req) })
	return &berthv1.DeleteAppResponse{RemovedServices: f.removed}, nil
}

func (f *fakeCluster) Logs(req *berthv1.LogsRequest, stream grpc.ServerStreamingServer[berthv1.LogEntry]) error {
	f.record(func() { f.logReqs = append(f.logReqs, req) })
	for _, e := range f.logs {
		if err := stream.Send(e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeCluster) ImportImage(stream grpc.ClientStreamingServer[berthv1.ImportImageRequest, berthv1.ImportImageResponse]) error {
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(f.importResp)
		}
		if err != nil {
			return err
		}
		f.record(func() { f.importMsgs = append(f.importMsgs, msg) })
	}
}

func (f *fakeCluster) JoinToken(_ context.Context, req *berthv1.JoinTokenRequest) (*berthv1.JoinTokenResponse, error) {
	f.record(func() { f.tokenReqs = append(f.tokenReqs, req) })
	return f.token, nil
}

func (f *fakeCluster) Version(context.Context, *berthv1.VersionRequest) (*berthv1.VersionResponse, error) {
	return &berthv1.VersionResponse{Version: "v9.9.9", GoVersion: "go1.99", ClusterId: "c-123"}, nil
}

// serve runs f on a loopback listener over mutual TLS and returns the path
// of a config file that reaches it.
func serve(t *testing.T, f berthv1.ClusterServiceServer) string {
	t.Helper()
	pki := testpki.New(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(pki.ServerTLS(t))))
	berthv1.RegisterClusterServiceServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return writeConfig(t, lis.Addr().String(), pki)
}

func writeConfig(t *testing.T, addr string, pki *testpki.PKI) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	cfg := &clientconfig.Config{Server: addr, CA: pki.CA, Certificate: pki.ClientCert, Key: pki.ClientKey}
	if err := clientconfig.Save(path, cfg); err != nil {
		t.Fatalf("save config: %v", err)
	}
	return path
}

// result is what one run of the berth command printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// run runs berth with args against the config at cfgPath.
func run(t *testing.T, cfgPath string, stdin io.Reader, args ...string) result {
	t.Helper()
	root := NewRoot()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	root.SetIn(stdin)
	root.SetArgs(append([]string{"--config", cfgPath}, args...))
	code := Execute(t.Context(), root)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// mustRun runs berth and fails the test unless it succeeds.
func mustRun(t *testing.T, cfgPath string, args ...string) result {
	t.Helper()
	r := run(t, cfgPath, nil, args...)
	if r.code != 0 {
		t.Fatalf("berth %s: exit %d, stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}
