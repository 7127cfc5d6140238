package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// callerWith is a call's context whose verified client certificate names
// role and id (authorize reads the chain the handshake verified).
func callerWith(role identity.Role, id string) context.Context {
	cert := &x509.Certificate{Subject: pkix.Name{Organization: []string{role.Organization()}, CommonName: id}}
	state := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
}

// TestNodeServiceAdmitsServersOnly checks the node's endpoint against the
// access table: the control plane's servers may call it; nodes, users and
// callers without a certificate may not.
func TestNodeServiceAdmitsServersOnly(t *testing.T) {
	const method = "/berth.v1.NodeService/Exec"
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"server", callerWith(identity.RoleServer, "server-1"), codes.OK},
		{"another node", callerWith(identity.RoleNode, "node-b"), codes.PermissionDenied},
		{"admin user", callerWith(identity.RoleAdmin, "admin"), codes.PermissionDenied},
		{"no certificate", context.Background(), codes.Unauthenticated},
	} {
		if got := status.Code(authorize(tt.ctx, method)); got != tt.want {
			t.Errorf("%s calling %s: %v; want %v", tt.name, method, got, tt.want)
		}
	}
	if got := status.Code(authorize(callerWith(identity.RoleServer, "server-1"), "/berth.v1.NodeService/NoSuchMethod")); got != codes.PermissionDenied {
		t.Errorf("a method missing from the table: %v; want PermissionDenied", got)
	}
}
