package httpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/apiserver"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCluster answers ListNodes with one node and remembers the caller
// metadata the call carried onward.
type fakeCluster struct {
	berthv1.ClusterServiceClient
	authorization, principal []string
}

func (f *fakeCluster) ListNodes(ctx context.Context, _ *berthv1.ListNodesRequest, _ ...grpc.CallOption) (*berthv1.ListNodesResponse, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	f.authorization, f.principal = md.Get("authorization"), md.Get(PrincipalMetadata)
	return &berthv1.ListNodesResponse{Nodes: []*berthv1.Node{{Name: "alpha"}}}, nil
}

// fakeTokens knows one token, "good"; "broken" fails as a store outage would.
type fakeTokens struct{}

func (fakeTokens) CheckAPIToken(_ context.Context, bearer string) (*berthv1.APIToken, error) {
	switch bearer {
	case "good":
		return &berthv1.APIToken{Id: "t1", Name: "ci"}, nil
	case "broken":
		return nil, errors.New("etcd is unreachable")
	}
	return nil, fmt.Errorf("%w: it was revoked or never issued", apiserver.ErrAPITokenInvalid)
}

// peerCert is a verified TLS connection whose client holds role.
func peerCert(role identity.Role) *tls.ConnectionState {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "someone", Organization: []string{role.Organization()}}}
	return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
}

func TestAuthentication(t *testing.T) {
	const listNodes = "/berth.v1.ClusterService/ListNodes"
	cases := []struct {
		name       string
		method     string
		path       string
		auth       string
		tls        *tls.ConnectionState
		wantStatus int
		wantBody   string
	}{
		{"bearer token", "POST", listNodes, "Bearer good", nil, 200, `"alpha"`},
		{"bearer scheme in any case", "POST", listNodes, "bearer good", nil, 200, `"alpha"`},
		{"admin certificate", "POST", listNodes, "", peerCert(identity.RoleAdmin), 200, `"alpha"`},
		// The gRPC server refuses it, by the access table.
		{"node certificate", "POST", listNodes, "", peerCert(identity.RoleNode), 200, `"alpha"`},
		{"nothing", "POST", listNodes, "", nil, 401, "berth token create"},
		{"TLS without a certificate", "POST", listNodes, "", &tls.ConnectionState{}, 401, "berth token create"},
		{"revoked token", "POST", listNodes, "Bearer revoked", nil, 401, "revoked"},
		{"bad token beside a good certificate", "POST", listNodes, "Bearer revoked", peerCert(identity.RoleAdmin), 401, "revoked"},
		{"basic auth", "POST", listNodes, "Basic dXNlcjpwdw==", nil, 401, "Bearer <token>"},
		{"token store down", "POST", listNodes, "Bearer broken", nil, 503, "try again"},
		{"OpenAPI without auth", "GET", OpenAPIPath, "", nil, 200, "/berth.v1.ClusterService/ListNodes"},
		{"OpenAPI by POST", "POST", OpenAPIPath, "", nil, 405, "GET"},
		{"unknown method", "POST", "/berth.v1.ClusterService/Nope", "Bearer good", nil, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cluster := &fakeCluster{}
			h, err := New(Config{Client: cluster, Tokens: fakeTokens{}, Version: "v1.2.3", Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(c.method, c.path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			// A forged caller never goes on.
			req.Header.Set("Grpc-Metadata-"+PrincipalMetadata, "forged")
			req.TLS = c.tls
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != c.wantStatus || !strings.Contains(body, c.wantBody) {
				t.Fatalf("%s %s = %d %s; want %d with %q", c.method, c.path, rec.Code, body, c.wantStatus, c.wantBody)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want JSON", ct)
			}
			if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("a 401 without WWW-Authenticate")
			}
			if rec.Code >= 400 && rec.Code != http.StatusNotFound {
				var e apiError
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" || e.Code == 0 {
					t.Errorf("error body %s is not {code, message}: %v", body, err)
				}
			}
			if rec.Code != http.StatusOK || c.path != listNodes {
				return
			}
			// The caller goes on as exactly one credential: the token, or
			// the certificate's principal.
			if c.auth != "" {
				if len(cluster.authorization) != 1 || !strings.HasSuffix(cluster.authorization[0], " good") || len(cluster.principal) != 0 {
					t.Errorf("forwarded authorization %q and principal %q, want the token only", cluster.authorization, cluster.principal)
				}
				return
			}
			if len(cluster.principal) != 1 || len(cluster.authorization) != 0 {
				t.Fatalf("forwarded authorization %q and principal %q, want the principal only", cluster.authorization, cluster.principal)
			}
			p, err := DecodePrincipal(cluster.principal[0])
			if err != nil || p.Name != "someone" || p.Role.Organization() != c.tls.VerifiedChains[0][0].Subject.Organization[0] {
				t.Errorf("forwarded principal %+v (%v), want someone with the certificate's role", p, err)
			}
		})
	}
}

func TestOpenAPIDocument(t *testing.T) {
	doc, err := openAPIDocument("v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Info struct {
			Title   string `json:"title"`
			Version string `json:"version"`
		} `json:"info"`
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if d.Info.Version != "v1.2.3" || !strings.Contains(d.Info.Title, "Berth") {
		t.Errorf("info = %+v, want the Berth title and version v1.2.3", d.Info)
	}
	if _, ok := d.Paths["/berth.v1.ClusterService/CreateAPIToken"]; !ok {
		t.Errorf("no CreateAPIToken path in the document")
	}
}
