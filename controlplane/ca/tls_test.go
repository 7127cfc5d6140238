package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// handshakeTimeout bounds a handshake that should fail fast, so that a
// bug shows as a failure rather than a hung test.
const handshakeTimeout = 10 * time.Second

type handshakeResult struct {
	server, client       tls.ConnectionState
	serverErr, clientErr error
}

// handshake runs one TLS handshake over a loopback listener.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()

	type serverSide struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan serverSide, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverSide{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		err = tc.HandshakeContext(ctx)
		done <- serverSide{state: tc.ConnectionState(), err: err}
	}()

	var r handshakeResult
	d := tls.Dialer{Config: clientCfg}
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		r.clientErr = err
	} else {
		r.client = conn.(*tls.Conn).ConnectionState()
		// In TLS 1.3 the client finishes first; a read waits for the server
		// to accept or reject the client certificate, and then sees EOF
		// once the server closes.
		_, _ = conn.Read(make([]byte, 1))
		conn.Close()
	}
	// Unblocks Accept if the client never connected.
	ln.Close()
	s := <-done
	r.server, r.serverErr = s.state, s.err
	return r
}

func serverConfig(t *testing.T, a *Authority, hosts ...string) *tls.Config {
	t.Helper()
	certPEM, keyPEM, err := a.IssueServer(hosts)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	cfg, err := identity.ServerTLS(certPEM, keyPEM, a.CACertPEM())
	if err != nil {
		t.Fatalf("ServerTLS: %v", err)
	}
	return cfg
}

// nodeCredentials joins a node the way an agent does: key and CSR made
// locally, certificate signed by the CA.
func nodeCredentials(t *testing.T, a *Authority, nodeID string) (certPEM, keyPEM []byte) {
	t.Helper()
	keyPEM, csrPEM, err := identity.NewKeyAndCSR("worker")
	if err != nil {
		t.Fatalf("NewKeyAndCSR: %v", err)
	}
	certPEM, err = a.SignNode(csrPEM, nodeID)
	if err != nil {
		t.Fatalf("SignNode: %v", err)
	}
	return certPEM, keyPEM
}

func tokenFor(t *testing.T, a *Authority) identity.Token {
	t.Helper()
	s, _, err := a.JoinToken(context.Background(), false, 0, 0)
	if err != nil {
		t.Fatalf("JoinToken: %v", err)
	}
	tok, err := identity.ParseToken(s)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	return tok
}

func TestBootstrapTLS(t *testing.T) {
	cluster, _ := openCA(t)
	other, _ := openCA(t)
	tok := tokenFor(t, cluster)
	tampered := tok
	tampered.CADigest = other.Digest()

	nodeCert, nodeKey := nodeCredentials(t, cluster, "n1")
	nodeServer, err := identity.ServerTLS(nodeCert, nodeKey, cluster.CACertPEM())
	if err != nil {
		t.Fatalf("ServerTLS with a node certificate: %v", err)
	}

	tests := []struct {
		name    string
		server  *tls.Config
		token   identity.Token
		wantErr string
	}{
		{"right cluster", serverConfig(t, cluster, "127.0.0.1"), tok, ""},
		{"server of another cluster", serverConfig(t, other, "127.0.0.1"), tok, "does not match the join token"},
		{"token naming another CA", serverConfig(t, cluster, "127.0.0.1"), tampered, "does not match the join token"},
		{"node posing as server", nodeServer, tok, "not a server certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handshake(t, tt.server, identity.BootstrapTLS(tt.token))
			if tt.wantErr == "" {
				if r.clientErr != nil || r.serverErr != nil {
					t.Fatalf("handshake failed: client %v, server %v", r.clientErr, r.serverErr)
				}
				if _, ok := identity.FromConnectionState(r.server); ok {
					t.Errorf("bootstrap client presented an identity")
				}
				return
			}
			if !errors.Is(r.clientErr, identity.ErrCAMismatch) {
				t.Fatalf("client error = %v, want ErrCAMismatch", r.clientErr)
			}
			if !strings.Contains(r.clientErr.Error(), tt.wantErr) {
				t.Errorf("client error %q does not mention %q", r.clientErr, tt.wantErr)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	cluster, _ := openCA(t)
	other, _ := openCA(t)
	server := serverConfig(t, cluster, "127.0.0.1")
	nodeCert, nodeKey := nodeCredentials(t, cluster, "n1")
	foreignCert, foreignKey := nodeCredentials(t, other, "n1")
	adminCert, adminKey, err := cluster.IssueAdmin()
	if err != nil {
		t.Fatalf("IssueAdmin: %v", err)
	}

	tests := []struct {
		name           string
		cert, key, ca  []byte
		serverName     string
		wantClientErr  string
		wantIdentity   identity.Identity
		wantIdentified bool
	}{
		{"node", nodeCert, nodeKey, cluster.CACertPEM(), "", "", identity.Identity{Role: identity.RoleNode, ID: "n1"}, true},
		{"admin", adminCert, adminKey, cluster.CACertPEM(), "", "", identity.Identity{Role: identity.RoleAdmin, ID: "admin"}, true},
		{"by IP", nodeCert, nodeKey, cluster.CACertPEM(), "127.0.0.1", "", identity.Identity{Role: identity.RoleNode, ID: "n1"}, true},
		{"anonymous", nil, nil, cluster.CACertPEM(), "", "", identity.Identity{}, false},
		// The server names its CA in the certificate request, so a client
		// holding only another cluster's certificate sends none and is
		// anonymous.
		{"client of another cluster", foreignCert, foreignKey, cluster.CACertPEM(), "", "", identity.Identity{}, false},
		{"trusting another CA", nodeCert, nodeKey, other.CACertPEM(), "", "certificate signed by unknown authority", identity.Identity{}, false},
		{"name not in certificate", nodeCert, nodeKey, cluster.CACertPEM(), "db.example", "not db.example", identity.Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := identity.ClientTLS(tt.cert, tt.key, tt.ca, tt.serverName)
			if err != nil {
				t.Fatalf("ClientTLS: %v", err)
			}
			r := handshake(t, server, client)
			if tt.wantClientErr != "" {
				if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), tt.wantClientErr) {
					t.Fatalf("client error = %v, want one mentioning %q", r.clientErr, tt.wantClientErr)
				}
				return
			}
			if r.clientErr != nil {
				t.Fatalf("client handshake: %v", r.clientErr)
			}
			if r.serverErr != nil {
				t.Fatalf("server handshake: %v", r.serverErr)
			}
			got, ok := identity.FromConnectionState(r.server)
			if got != tt.wantIdentity || ok != tt.wantIdentified {
				t.Errorf("server sees client %v, %v; want %v, %v", got, ok, tt.wantIdentity, tt.wantIdentified)
			}
			if peer, ok := identity.FromConnectionState(r.client); !ok || peer.Role != identity.RoleServer {
				t.Errorf("client sees server %v, %v; want a server", peer, ok)
			}
		})
	}
}

// TestServerRejectsForeignClient makes a client push another cluster's
// certificate although the server did not ask for that CA.
func TestServerRejectsForeignClient(t *testing.T) {
	cluster, _ := openCA(t)
	other, _ := openCA(t)
	foreignCert, foreignKey := nodeCredentials(t, other, "n1")
	client, err := identity.ClientTLS(foreignCert, foreignKey, cluster.CACertPEM(), "")
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &client.Certificates[0], nil
	}
	r := handshake(t, serverConfig(t, cluster), client)
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "certificate signed by unknown authority") {
		t.Errorf("server error = %v, want the foreign certificate refused", r.serverErr)
	}
	if _, ok := identity.FromConnectionState(r.server); ok {
		t.Errorf("server accepted an identity from another cluster's certificate")
	}
}

// TestClientTLSDialingNodes checks that a node certificate cannot
// stand in for a server when the client dials "any server of the cluster",
// and that dialing a node by its id works.
func TestClientTLSDialingNodes(t *testing.T) {
	cluster, _ := openCA(t)
	nodeCert, nodeKey := nodeCredentials(t, cluster, "n1")
	nodeServer, err := identity.ServerTLS(nodeCert, nodeKey, cluster.CACertPEM())
	if err != nil {
		t.Fatalf("ServerTLS: %v", err)
	}
	serverCert, serverKey, err := cluster.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}

	asAnyServer, err := identity.ClientTLS(serverCert, serverKey, cluster.CACertPEM(), "")
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	if r := handshake(t, nodeServer, asAnyServer); r.clientErr == nil {
		t.Errorf("a node certificate passed for %s", identity.ServerName)
	}

	asNode, err := identity.ClientTLS(serverCert, serverKey, cluster.CACertPEM(), "n1")
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	r := handshake(t, nodeServer, asNode)
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("server dialing node n1: client %v, server %v", r.clientErr, r.serverErr)
	}
	if got, _ := identity.FromConnectionState(r.server); got.Role != identity.RoleServer {
		t.Errorf("node sees caller %v, want a server", got)
	}
}

// TestGRPCIdentity runs the join and session paths over gRPC: FromContext
// sees no identity for a bootstrap caller and the node for an mTLS caller,
// and a bootstrap caller refuses a server of another cluster.
func TestGRPCIdentity(t *testing.T) {
	cluster, _ := openCA(t)
	other, _ := openCA(t)
	tok := tokenFor(t, cluster)
	nodeCert, nodeKey := nodeCredentials(t, cluster, "n1")
	nodeTLS, err := identity.ClientTLS(nodeCert, nodeKey, cluster.CACertPEM(), "")
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}

	type seen struct {
		id identity.Identity
		ok bool
	}
	calls := make(chan seen, 4)
	addr := serveHealth(t, serverConfig(t, cluster), func(ctx context.Context) {
		id, ok := identity.FromContext(ctx)
		calls <- seen{id, ok}
	})
	foreignAddr := serveHealth(t, serverConfig(t, other), func(context.Context) {})

	tests := []struct {
		name    string
		addr    string
		tls     *tls.Config
		want    seen
		wantErr string
	}{
		{"join", addr, identity.BootstrapTLS(tok), seen{}, ""},
		{"session", addr, nodeTLS, seen{identity.Identity{Role: identity.RoleNode, ID: "n1"}, true}, ""},
		{"join another cluster", foreignAddr, identity.BootstrapTLS(tok), seen{}, "does not match the join token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := grpc.NewClient(tt.addr, grpc.WithTransportCredentials(credentials.NewTLS(tt.tls)))
			if err != nil {
				t.Fatalf("grpc.NewClient: %v", err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
			defer cancel()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Check error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := <-calls; got != tt.want {
				t.Errorf("server saw caller %+v, want %+v", got, tt.want)
			}
		})
	}
}

// serveHealth serves the gRPC health service on a loopback port with tlsCfg,
// calling observe with each call's context. It stops when the test ends.
func serveHealth(t *testing.T, tlsCfg *tls.Config, observe func(context.Context)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			observe(ctx)
			return h(ctx, req)
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return lis.Addr().String()
}

func TestTokenVerifyCA(t *testing.T) {
	cluster, _ := openCA(t)
	other, _ := openCA(t)
	tok := tokenFor(t, cluster)
	if err := tok.VerifyCA(cluster.CACertPEM()); err != nil {
		t.Errorf("VerifyCA(own CA): %v", err)
	}
	for name, caPEM := range map[string][]byte{"other CA": other.CACertPEM(), "not PEM": []byte("x")} {
		if err := tok.VerifyCA(caPEM); !errors.Is(err, identity.ErrCAMismatch) {
			t.Errorf("VerifyCA(%s) = %v, want ErrCAMismatch", name, err)
		}
	}
}
