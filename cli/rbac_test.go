package cli

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
	"github.com/berthproject/berth/internal/testpki"
)

// whoCluster answers WhoAmI with what the call carried: the bearer token,
// and whether a client certificate came with it.
type whoCluster struct {
	fakeCluster
	users []*berthv1.CreateUserRequest
}

func (w *whoCluster) WhoAmI(ctx context.Context, _ *berthv1.WhoAmIRequest) (*berthv1.WhoAmIResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	who := "nobody"
	if a := md.Get("authorization"); len(a) == 1 {
		who = "token:" + strings.TrimPrefix(a[0], "Bearer ")
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			who += "+certificate"
		}
	}
	return &berthv1.WhoAmIResponse{Principal: who, Role: "deployer", Namespaces: []string{"team-a"}, Methods: []string{"Apply", "ListServices"}}, nil
}

func (w *whoCluster) CreateUser(_ context.Context, req *berthv1.CreateUserRequest) (*berthv1.CreateUserResponse, error) {
	w.record(func() { w.users = append(w.users, req) })
	return &berthv1.CreateUserResponse{User: &berthv1.User{Name: req.Name, Role: req.Role, Namespaces: req.Namespaces},
		Certificate: []byte("CERT"), CaCertificate: []byte("CA")}, nil
}

// serveOptionalCert serves f over TLS that asks for, but does not need, a
// client certificate, as Berth servers do.
func serveOptionalCert(t *testing.T, f berthv1.ClusterServiceServer) (string, *testpki.PKI) {
	t.Helper()
	pki := testpki.New(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := pki.ServerTLS(t)
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	berthv1.RegisterClusterServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return writeConfig(t, lis.Addr().String(), pki), pki
}

func TestTokenInsteadOfCertificate(t *testing.T) {
	cfg, pki := serveOptionalCert(t, &whoCluster{})
	if r := mustRun(t, cfg, "whoami"); !strings.Contains(r.stdout, "nobody+certificate") || !strings.Contains(r.stdout, "team-a") {
		t.Errorf("whoami with the config's certificate:\n%s", r.stdout)
	}
	if r := mustRun(t, cfg, "whoami", "--token", "berth_x.y"); !strings.Contains(r.stdout, "Principal:   token:berth_x.y\n") {
		t.Errorf("whoami --token: a token must go alone, without the certificate:\n%s", r.stdout)
	}
	t.Setenv(EnvToken, "berth_env.z")
	if r := mustRun(t, cfg, "whoami", "-o", "json"); !strings.Contains(r.stdout, `"principal": "token:berth_env.z"`) {
		t.Errorf("whoami with %s:\n%s", EnvToken, r.stdout)
	}
	os.Unsetenv(EnvToken)

	// A context that holds only a token.
	tokenOnly := filepath.Join(t.TempDir(), "config")
	addr := strings.TrimSpace(mustRun(t, cfg, "context", "show").stdout)
	addr = addr[strings.LastIndex(addr, "\t")+1:]
	if err := clientconfig.Save(tokenOnly, &clientconfig.Config{Server: addr, CA: pki.CA, Token: "berth_ctx.w"}); err != nil {
		t.Fatal(err)
	}
	if r := mustRun(t, tokenOnly, "whoami"); !strings.Contains(r.stdout, "Principal:   token:berth_ctx.w\n") {
		t.Errorf("whoami with a token context:\n%s", r.stdout)
	}
}

func TestTokenCreateWithRole(t *testing.T) {
	f := &tokenCluster{}
	cfg := serve(t, f)
	mustRun(t, cfg, "token", "create", "ci", "--role", "deployer", "--namespace", "team-a", "--namespace", "team-b")
	if len(f.creates) != 1 || f.creates[0].Role != "deployer" || strings.Join(f.creates[0].Namespaces, ",") != "team-a,team-b" {
		t.Errorf("token create sent %v", f.creates)
	}
	if r := run(t, cfg, nil, "token", "create", "ci", "--role", "root"); r.code != exitUsage || !strings.Contains(r.stderr, "viewer, deployer or admin") {
		t.Errorf("token create --role root: exit %d, %q", r.code, r.stderr)
	}
}

func TestUserCreateWritesAConfig(t *testing.T) {
	f := &whoCluster{}
	cfg, _ := serveOptionalCert(t, f)
	out := filepath.Join(t.TempDir(), "alice.yaml")
	mustRun(t, cfg, "user", "create", "alice", "--role", "viewer", "--namespace", "team-a", "-o", out)
	if len(f.users) != 1 || f.users[0].Role != "viewer" || len(f.users[0].Csr) == 0 {
		t.Fatalf("user create sent %v", f.users)
	}
	file, err := clientconfig.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if file.Certificate != "CERT" || file.CA != "CA" || file.Namespace != "team-a" || !strings.Contains(file.Key, "PRIVATE KEY") {
		t.Errorf("user config = %+v", file.Config)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("user config mode: %v %v", fi.Mode(), err)
	}
	// It is never overwritten.
	if r := run(t, cfg, nil, "user", "create", "alice", "--role", "viewer", "-o", out); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("user create over an existing file: exit %d, %q", r.code, r.stderr)
	}
	if r := run(t, cfg, nil, "user", "create", "bob"); r.code != exitUsage {
		t.Errorf("user create without --role: exit %d, want %d", r.code, exitUsage)
	}
}

func TestAllNamespacesListing(t *testing.T) {
	f := &fakeCluster{tasks: []*berthv1.Task{
		{Meta: &berthv1.Meta{Id: "t1aaaaaaaaaaaa"}, Namespace: "team-a", App: "shop", Service: "web", Slot: 1},
	}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "ps", "-A")
	if len(f.taskReqs) != 1 || !f.taskReqs[0].AllNamespaces {
		t.Fatalf("ps -A sent %v", f.taskReqs)
	}
	if !strings.HasPrefix(r.stdout, "NAMESPACE") || !strings.Contains(r.stdout, "team-a") {
		t.Errorf("ps -A:\n%s", r.stdout)
	}
	if r := mustRun(t, cfg, "ps"); strings.Contains(r.stdout, "NAMESPACE") {
		t.Errorf("ps without -A shows a NAMESPACE column:\n%s", r.stdout)
	}
}
