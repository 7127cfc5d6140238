// Package session connects an agent to the control plane: it joins the
// cluster once with a token, then keeps one mTLS session stream open,
// reconnecting when it breaks.
package session

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Credentials are what a joined node proves itself with.
type Credentials struct {
	NodeID string
	// Cert, Key and CA are PEM.
	Cert, Key, CA []byte
}

const (
	certFile = "node.crt"
	keyFile  = "node.key"
	caFile   = "ca.crt"
)

// Node is what a node is known by, fixed when it joins: the control plane
// ignores what later sessions say of it, so that a node cannot change its
// name or labels to attract tasks.
type Node struct {
	Name, Hostname string
	// Labels are the agent's --label flags.
	Labels map[string]string
}

// LoadOrJoin returns the node credentials kept in dir, or joins the cluster
// through one of servers (the first that answers) with token as node, and
// keeps the credentials it receives there.
func LoadOrJoin(ctx context.Context, dir string, servers []string, token string, node Node) (*Credentials, error) {
	creds, err := load(dir)
	if err == nil {
		return creds, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("this node has not joined a cluster yet: pass --token (`berth join-token` on a server prints it)")
	}
	tok, err := identity.ParseToken(token)
	if err != nil {
		return nil, err
	}
	keyPEM, csrPEM, err := identity.NewKeyAndCSR(node.Name)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, server := range servers {
		resp, err := join(ctx, server, tok, &berthv1.JoinRequest{Token: token, NodeName: node.Name, Csr: csrPEM,
			Hostname: node.Hostname, Labels: node.Labels})
		if err != nil {
			errs = append(errs, err)
			if st, ok := status.FromError(errors.Unwrap(err)); ok && st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded {
				// The server answered and refused: another would too.
				break
			}
			continue
		}
		if err := tok.VerifyCA(resp.CaCertificate); err != nil {
			return nil, err
		}
		creds = &Credentials{NodeID: resp.NodeId, Cert: resp.Certificate, Key: keyPEM, CA: resp.CaCertificate}
		if err := save(dir, creds); err != nil {
			return nil, err
		}
		return creds, nil
	}
	return nil, errors.Join(errs...)
}

// join asks server to admit the node.
func join(ctx context.Context, server string, tok identity.Token, req *berthv1.JoinRequest) (*berthv1.JoinResponse, error) {
	conn, err := grpc.NewClient(server, grpc.WithTransportCredentials(credentials.NewTLS(identity.BootstrapTLS(tok))))
	if err != nil {
		return nil, fmt.Errorf("joining %s: %w", server, err)
	}
	defer conn.Close()
	resp, err := berthv1.NewAgentServiceClient(conn).Join(ctx, req)
	if err != nil {
		return nil, &joinError{server: server, err: err}
	}
	return resp, nil
}

// joinError is a join a server refused or did not answer.
type joinError struct {
	server string
	err    error
}

func (e *joinError) Error() string {
	if st, ok := status.FromError(e.err); ok {
		return fmt.Sprintf("joining %s: %s", e.server, st.Message())
	}
	return fmt.Sprintf("joining %s: %v", e.server, e.err)
}

func (e *joinError) Unwrap() error { return e.err }

func load(dir string) (*Credentials, error) {
	var c Credentials
	for name, dst := range map[string]*[]byte{certFile: &c.Cert, keyFile: &c.Key, caFile: &c.CA} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		*dst = b
	}
	if err := finishRenewal(dir, &c); err != nil {
		return nil, fmt.Errorf("finishing a certificate renewal cut short in %s: %w", dir, err)
	}
	block, _ := pem.Decode(c.Cert)
	if block == nil {
		return nil, fmt.Errorf("%s holds no certificate; remove %s to join again", filepath.Join(dir, certFile), dir)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, certFile), err)
	}
	who, err := identity.FromCertificate(cert)
	if err != nil || who.Role != identity.RoleNode {
		return nil, fmt.Errorf("%s is not a node certificate; remove %s to join again", filepath.Join(dir, certFile), dir)
	}
	c.NodeID = who.ID
	return &c, nil
}

func save(dir string, c *Credentials) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The certificate goes last: its presence is what says "joined".
	for _, f := range []struct {
		name string
		data []byte
	}{{keyFile, c.Key}, {caFile, c.CA}, {certFile, c.Cert}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("saving node credentials: %w", err)
		}
	}
	return nil
}
