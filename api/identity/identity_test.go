package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func certWith(orgs []string, cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{Organization: orgs, CommonName: cn}}
}

func TestFromCertificate(t *testing.T) {
	tests := []struct {
		name    string
		cert    *x509.Certificate
		want    Identity
		wantErr string
	}{
		{"server", certWith([]string{"berth-server"}, "10.0.0.1"), Identity{RoleServer, "10.0.0.1"}, ""},
		{"node", certWith([]string{"berth-node"}, "n1a2b3"), Identity{RoleNode, "n1a2b3"}, ""},
		{"admin", certWith([]string{"berth-admin"}, "admin"), Identity{RoleAdmin, "admin"}, ""},
		{"role among other orgs", certWith([]string{"acme", "berth-node"}, "n1"), Identity{RoleNode, "n1"}, ""},
		{"nil", nil, Identity{}, "no certificate"},
		{"foreign", certWith([]string{"acme"}, "www"), Identity{}, "names no Berth role"},
		{"unknown role", certWith([]string{"berth-root"}, "x"), Identity{}, "names no Berth role"},
		{"two roles", certWith([]string{"berth-node", "berth-server"}, "x"), Identity{}, "names two roles"},
		{"no common name", certWith([]string{"berth-node"}, ""), Identity{}, "empty common name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromCertificate(tt.cert)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromCertificate error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromCertificate: %v", err)
			}
			if got != tt.want {
				t.Errorf("FromCertificate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFromContext(t *testing.T) {
	node := certWith([]string{RoleNode.Organization()}, "n7")
	tlsPeer := func(chains [][]*x509.Certificate) context.Context {
		return peer.NewContext(context.Background(), &peer.Peer{
			Addr:     &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
			AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: chains}},
		})
	}
	tests := []struct {
		name   string
		ctx    context.Context
		want   Identity
		wantOK bool
	}{
		{"verified node", tlsPeer([][]*x509.Certificate{{node}}), Identity{RoleNode, "n7"}, true},
		{"no client certificate", tlsPeer(nil), Identity{}, false},
		{"foreign certificate", tlsPeer([][]*x509.Certificate{{certWith(nil, "x")}}), Identity{}, false},
		{"no peer", context.Background(), Identity{}, false},
		{"not TLS", peer.NewContext(context.Background(), &peer.Peer{}), Identity{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromContext(tt.ctx)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("FromContext = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
