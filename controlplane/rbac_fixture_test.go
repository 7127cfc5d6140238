package controlplane

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// rbacCluster is a cluster API behind the real interceptors, over TLS,
// on a real store: what a server serves, without nodes.
type rbacCluster struct {
	addr      string
	authority *ca.Authority
	api       *apiserver.Server
	auth      *authenticator
	streams   *openStreams
	serverTLS credentials.TransportCredentials
}

func newRBACCluster(t *testing.T) *rbacCluster {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st := storetest.New(t)
	cache := storetest.NewCache(t, st)
	kek, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.Open(ctx, caPersistence{st}, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	streams := newOpenStreams()
	tokens := storetest.RunMirror(t, apiserver.NewAPITokenMirror(st, streams.tokenChanged, log))
	users := storetest.RunMirror(t, apiserver.NewUserMirror(st, log))
	storetest.RunMirror(t, store.NewMirror(st, store.RevokedPrefix, func() *berthv1.RevokedCertificate { return &berthv1.RevokedCertificate{} },
		streams.certificateRevoked, log))
	api := apiserver.New(apiserver.Config{Store: st, Cache: cache, Authority: authority, Log: log, APITokens: tokens, Users: users})
	certPEM, keyPEM, err := authority.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := identity.ServerTLS(certPEM, keyPEM, authority.CACertPEM())
	if err != nil {
		t.Fatal(err)
	}
	c := &rbacCluster{authority: authority, api: api, auth: &authenticator{tokens: api, streams: streams}, streams: streams,
		serverTLS: credentials.NewTLS(tlsCfg)}
	c.addr = c.serve(t, func(s *grpc.Server) { berthv1.RegisterClusterServiceServer(s, api) })
	return c
}

// serve starts a gRPC server with the real authentication and
// authorisation interceptors and the services register adds; it stops
// when the test ends.
func (c *rbacCluster) serve(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	s := grpc.NewServer(grpc.Creds(c.serverTLS),
		grpc.ChainUnaryInterceptor(c.auth.authenticateUnary, authorizeUnary),
		grpc.ChainStreamInterceptor(c.auth.authenticateStream, authorizeStream))
	register(s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(lis) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return lis.Addr().String()
}

// bearer sends an API token with every call, as the CLI's --token does.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// dial connects to addr with a client certificate (certPEM, keyPEM may
// be nil) and, when token is not empty, a bearer token.
func (c *rbacCluster) dial(t *testing.T, addr string, certPEM, keyPEM []byte, token string) *grpc.ClientConn {
	t.Helper()
	tc, err := identity.ClientTLS(certPEM, keyPEM, c.authority.CACertPEM(), "")
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// admin is a client with the admin certificate `berth server` writes.
func (c *rbacCluster) admin(t *testing.T) berthv1.ClusterServiceClient {
	t.Helper()
	cert, key, err := c.authority.IssueAdmin()
	if err != nil {
		t.Fatal(err)
	}
	return berthv1.NewClusterServiceClient(c.dial(t, c.addr, cert, key, ""))
}

// token makes an API token as maker and returns a client that uses it.
func (c *rbacCluster) token(t *testing.T, maker berthv1.ClusterServiceClient, name, role string, namespaces ...string) (berthv1.ClusterServiceClient, string) {
	t.Helper()
	resp, err := maker.CreateAPIToken(context.Background(), &berthv1.CreateAPITokenRequest{Name: name, Role: role, Namespaces: namespaces})
	if err != nil {
		t.Fatalf("token %s: %v", name, err)
	}
	return berthv1.NewClusterServiceClient(c.dial(t, c.addr, nil, nil, resp.GetSecret())), resp.GetSecret()
}

// user makes a user as maker (the key made here, as the CLI does) and
// returns its certificate and key.
func (c *rbacCluster) user(t *testing.T, maker berthv1.ClusterServiceClient, name, role string, namespaces ...string) (cert, key []byte) {
	t.Helper()
	key, csr, err := identity.NewKeyAndCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := maker.CreateUser(context.Background(), &berthv1.CreateUserRequest{Name: name, Role: role, Namespaces: namespaces, Csr: csr})
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return resp.GetCertificate(), key
}
