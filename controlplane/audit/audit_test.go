package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// secretData is what CreateSecret carries; no record may hold it.
const secretData = "s3cr3t-password-value"

// fakeCluster answers a few methods as the API server would, without a
// store: ScaleService fails for app "missing".
type fakeCluster struct {
	berthv1.UnimplementedClusterServiceServer
}

func (fakeCluster) ScaleService(_ context.Context, req *berthv1.ScaleServiceRequest) (*berthv1.Service, error) {
	if req.App == "missing" {
		return nil, status.Errorf(codes.NotFound, "no app %q in namespace %q", req.App, req.Namespace)
	}
	return &berthv1.Service{Name: req.Service}, nil
}

func (fakeCluster) DeleteApp(context.Context, *berthv1.DeleteAppRequest) (*berthv1.DeleteAppResponse, error) {
	return &berthv1.DeleteAppResponse{}, nil
}

func (fakeCluster) ListApps(context.Context, *berthv1.ListAppsRequest) (*berthv1.ListAppsResponse, error) {
	return &berthv1.ListAppsResponse{}, nil
}

func (fakeCluster) CreateSecret(_ context.Context, req *berthv1.CreateSecretRequest) (*berthv1.Secret, error) {
	return &berthv1.Secret{}, nil
}

func (fakeCluster) UpdateNode(_ context.Context, req *berthv1.UpdateNodeRequest) (*berthv1.Node, error) {
	return &berthv1.Node{Name: req.Node}, nil
}

// Exec reads the start and stdin until the client closes it, then ends.
func (fakeCluster) Exec(stream grpc.BidiStreamingServer[berthv1.ExecRequest, berthv1.ExecResponse]) error {
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return stream.Send(&berthv1.ExecResponse{Part: &berthv1.ExecResponse_ExitCode{ExitCode: 0}})
		} else if err != nil {
			return err
		}
	}
}

// Build fails after its header: no node builds in this test.
func (fakeCluster) Build(stream grpc.BidiStreamingServer[berthv1.BuildRequest, berthv1.BuildEvent]) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	return status.Error(codes.FailedPrecondition, "no ready node to build on")
}

const principalHeader = "x-test-principal"

// authenticate plays the authentication interceptor: the principal is
// "kind/name/role" from a header.
func authenticate(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(principalHeader)
	if len(v) == 0 {
		return ctx
	}
	parts := strings.SplitN(v[0], "/", 3)
	return access.NewContext(ctx, access.Principal{Kind: parts[0], Name: parts[1], Role: identity.Role(parts[2])})
}

// authorize plays the authorisation interceptor, after the recorder:
// viewers are refused whatever changes something.
func authorize(ctx context.Context, method string) error {
	p, _ := access.FromContext(ctx)
	if access.Methods[method].Mutates && p.Role == identity.RoleViewer {
		return status.Errorf(codes.PermissionDenied, "%s is a viewer and may not call %s", p, access.ShortName(method))
	}
	return nil
}

type authStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s authStream) Context() context.Context { return s.ctx }

// lockedBuffer is an export target that the race detector accepts.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serve runs the fake cluster behind authenticate, the recorder and
// authorize, and returns a client and what the recorder exported.
func serve(t *testing.T, st *store.Store) (berthv1.ClusterServiceClient, *lockedBuffer) {
	t.Helper()
	export := &lockedBuffer{}
	rec := New(Config{Store: st, Export: export, Log: slog.New(slog.DiscardHandler)})
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				return h(authenticate(ctx), req)
			},
			rec.Unary,
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if err := authorize(ctx, info.FullMethod); err != nil {
					return nil, err
				}
				return h(ctx, req)
			}),
		grpc.ChainStreamInterceptor(
			func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				return h(srv, authStream{ss, authenticate(ss.Context())})
			},
			rec.Stream,
			func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				// A real authorisation reads the first message for its
				// namespace; this one reads it too, through the recorder.
				first := &berthv1.ExecRequest{}
				if info.FullMethod == "/berth.v1.ClusterService/Exec" {
					if err := ss.RecvMsg(first); err != nil {
						return err
					}
				}
				if err := authorize(ss.Context(), info.FullMethod); err != nil {
					return err
				}
				if info.FullMethod == "/berth.v1.ClusterService/Exec" {
					return h(srv, &replayStream{ServerStream: ss, first: first})
				}
				return h(srv, ss)
			}),
	)
	berthv1.RegisterClusterServiceServer(gs, fakeCluster{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return berthv1.NewClusterServiceClient(conn), export
}

// replayStream hands the handler the message authorisation already read.
type replayStream struct {
	grpc.ServerStream
	first proto.Message
}

func (s *replayStream) RecvMsg(m any) error {
	if s.first != nil {
		proto.Merge(m.(proto.Message), s.first)
		s.first = nil
		return nil
	}
	return s.ServerStream.RecvMsg(m)
}

func as(ctx context.Context, principal string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, principalHeader, principal)
}

func TestRecorderRecordsEveryChangeWithItsAuthorAndResult(t *testing.T) {
	st := storetest.New(t)
	client, export := serve(t, st)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	alice := as(ctx, "user/alice/deployer")
	start := time.Now()

	if _, err := client.ScaleService(alice, &berthv1.ScaleServiceRequest{Namespace: "team-a", App: "shop", Service: "web", Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ScaleService(alice, &berthv1.ScaleServiceRequest{App: "missing", Service: "web", Replicas: 3}); status.Code(err) != codes.NotFound {
		t.Fatalf("scale of a missing app: %v, want NotFound", err)
	}
	// Reads are not recorded.
	if _, err := client.ListApps(alice, &berthv1.ListAppsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateSecret(alice, &berthv1.CreateSecretRequest{Namespace: "team-a", Name: "db-password", Data: []byte(secretData)}); err != nil {
		t.Fatal(err)
	}
	// Refused by the authorisation after the recorder: recorded.
	if _, err := client.DeleteApp(as(ctx, "token/ci/viewer"), &berthv1.DeleteAppRequest{Namespace: "team-b", App: "shop"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer's DeleteApp: %v, want PermissionDenied", err)
	}
	if _, err := client.UpdateNode(as(ctx, "user/root/admin"), &berthv1.UpdateNodeRequest{Node: "beta"}); err != nil {
		t.Fatal(err)
	}
	exec, err := client.Exec(alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Start{Start: &berthv1.ExecStart{Namespace: "team-a", TaskId: "t123", Command: []string{"sh"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := exec.Send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Stdin{Stdin: []byte("echo " + secretData)}}); err != nil {
		t.Fatal(err)
	}
	if err := exec.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := exec.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("exec: %v", err)
		}
	}
	build, err := client.Build(alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := build.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_Header{Header: &berthv1.BuildHeader{Tags: []string{"web:dev", "web:1"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := build.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("build: %v, want FailedPrecondition", err)
	}

	// Each call's record was written before it answered: no waiting.
	records, _, err := st.AuditRecords(ctx, start.Add(-time.Second), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ principal, role, method, namespace, target, code string }
	want := []row{
		{"user/alice", "deployer", "ScaleService", "team-a", "service shop/web", "OK"},
		{"user/alice", "deployer", "ScaleService", "default", "service missing/web", "NotFound"},
		{"user/alice", "deployer", "CreateSecret", "team-a", "secret db-password", "OK"},
		{"token/ci", "viewer", "DeleteApp", "team-b", "app shop", "PermissionDenied"},
		{"user/root", "admin", "UpdateNode", "", "node beta", "OK"},
		{"user/alice", "deployer", "Exec", "team-a", "task t123", "OK"},
		{"user/alice", "deployer", "Build", "", "image web:dev (+1)", "FailedPrecondition"},
	}
	if len(records) != len(want) {
		t.Fatalf("%d records, want %d: %v", len(records), len(want), records)
	}
	for i, r := range records {
		got := row{r.Principal, r.Role, r.Method, r.Namespace, r.Target, r.Code}
		if got != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got, want[i])
		}
		if !strings.HasPrefix(r.Peer, "127.0.0.1:") {
			t.Errorf("record %d: peer %q, want the client's loopback address", i, r.Peer)
		}
		if r.Id == "" || r.Time == nil || r.Time.AsTime().Before(start.Add(-time.Second)) {
			t.Errorf("record %d: id %q, time %v", i, r.Id, r.Time)
		}
	}
	if msg := records[1].Message; !strings.Contains(msg, `no app "missing"`) {
		t.Errorf("failed call's message %q, want the error's", msg)
	}
	if msg := records[3].Message; !strings.Contains(msg, "may not call DeleteApp") {
		t.Errorf("refused call's message %q, want the refusal's", msg)
	}

	// The export holds the same records, one JSON object a line.
	lines := strings.Split(strings.TrimSuffix(export.String(), "\n"), "\n")
	if len(lines) != len(records) {
		t.Fatalf("%d exported lines, want %d:\n%s", len(lines), len(records), export.String())
	}
	for i, line := range lines {
		got := &berthv1.AuditRecord{}
		if err := protojson.Unmarshal([]byte(line), got); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if !proto.Equal(got, records[i]) {
			t.Errorf("exported line %d is %v, stored record is %v", i, got, records[i])
		}
	}
	for i, r := range records {
		b, _ := proto.Marshal(r)
		if bytes.Contains(b, []byte(secretData)) {
			t.Errorf("record %d holds the secret's data", i)
		}
	}
	if strings.Contains(export.String(), secretData) {
		t.Error("the export holds the secret's data")
	}
}

func TestRecorderNamesCertificateHolderWithoutPrincipal(t *testing.T) {
	if got, role := principalOf(context.Background()); got != Anonymous || role != "" {
		t.Errorf("no credential: %q %q, want %q", got, role, Anonymous)
	}
	ctx := access.NewContext(context.Background(), access.Principal{Kind: "token", Name: "ci", Role: identity.RoleDeployer})
	if got, role := principalOf(ctx); got != "token/ci" || role != "deployer" {
		t.Errorf("token: %q %q", got, role)
	}
}

// failingWriter fails every write, like a full disk.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRecorderAnswersWhenTheRecordCannotBeWritten(t *testing.T) {
	// A store whose etcd connection is closed stands for an etcd that is
	// gone, and a failing writer for a full disk.
	e, err := etcd.StartEmbedded(etcd.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := etcd.Connect(t.Context(), []string{e.Endpoint()}, etcd.ClientTLS{})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(cli)
	cli.Close()
	var logs lockedBuffer
	rec := New(Config{Store: st, Export: failingWriter{}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	info := &grpc.UnaryServerInfo{FullMethod: "/berth.v1.ClusterService/DeleteApp"}
	resp, err := rec.Unary(t.Context(), &berthv1.DeleteAppRequest{App: "shop"}, info,
		func(context.Context, any) (any, error) { return &berthv1.DeleteAppResponse{}, nil })
	if err != nil || resp == nil {
		t.Fatalf("call: %v, %v", resp, err)
	}
	for _, want := range []string{`level=ERROR msg="audit record not stored"`, `level=ERROR msg="audit record not exported"`, "disk full"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
