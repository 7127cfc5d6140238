package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	ctdruntime "github.com/berthproject/berth/agent/runtime/containerd"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/internal/containerdtest"
	"github.com/berthproject/berth/internal/testca"
	"github.com/berthproject/berth/internal/testimage"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const testRef = "localhost/busybox:latest"

// testCA is a cluster CA for tests, issuing node and admin certificates
// the way the control plane's CA does (role in the Organization, id in
// the CommonName and as DNS name).
type testCA struct{ *testca.CA }

func newTestCA(t *testing.T) *testCA { return &testCA{testca.New(t)} }

// issue returns the PEM certificate and key of id with role.
func (ca *testCA) issue(t *testing.T, role identity.Role, id string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: id, Organization: []string{role.Organization()}},
		DNSNames:     []string{id},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// newRuntime connects a runtime to a containerd namespace of its own,
// removed with everything in it when the test ends; it skips the test
// when containerd is not running.
func newRuntime(t *testing.T) *ctdruntime.Runtime {
	t.Helper()
	if _, err := os.Stat(ctdruntime.DefaultAddress); err != nil {
		t.Skipf("containerd is not running (no %s; `make setup` starts it): %v", ctdruntime.DefaultAddress, err)
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	ns := "berth-test-" + hex.EncodeToString(suffix)
	t.Cleanup(func() {
		client, err := containerd.New(ctdruntime.DefaultAddress)
		if err != nil {
			t.Errorf("cleanup of namespace %s: %v", ns, err)
			return
		}
		defer client.Close()
		if err := containerdtest.CleanupNamespace(client, ns); err != nil {
			t.Errorf("cleanup of namespace %s: %v", ns, err)
		}
	})
	rt, err := ctdruntime.New(context.Background(), ctdruntime.Config{Namespace: ns, Owner: "test", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// importBusybox puts the busybox test image into rt and returns it.
func importBusybox(t *testing.T, rt runtime.Runtime, extra ...testimage.File) runtime.Image {
	t.Helper()
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		t.Skipf("no busybox to build the test image: %v", err)
	}
	var buf bytes.Buffer
	if err := testimage.WriteOCIArchive(&buf, testRef, append(files, extra...), testimage.Config{Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	images, err := rt.ImportImage(context.Background(), &buf)
	if err != nil || len(images) != 1 {
		t.Fatalf("import: %v %v", images, err)
	}
	return images[0]
}

// contentServer serves rt's store over TLS with a node certificate of ca,
// to nodes with a pull grant of ca.
func contentServer(t *testing.T, ca *testCA, rt *ctdruntime.Runtime) *httptest.Server {
	t.Helper()
	return serveContent(t, ca, NewContentServer(contentConfig(t, ca, rt)))
}

func contentConfig(t *testing.T, ca *testCA, rt *ctdruntime.Runtime) ContentServerConfig {
	t.Helper()
	grants, err := identity.NewPullGrantVerifier(ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	return ContentServerConfig{Content: rt.Client().ContentStore(), Grants: grants, Namespace: rt.Namespace(), NodeName: "alpha"}
}

// grant is ca's pull grant of dgst for node, as HeaderPullGrant carries it.
func (ca *testCA) grant(t *testing.T, node, dgst string) string {
	t.Helper()
	g, err := identity.SignPullGrant(ca.Key, node, dgst, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(g)
}

// grantedSource is a source of one peer with ca's grant of dgst for node.
func (ca *testCA) grantedSource(t *testing.T, peer, node, dgst string) *berthv1.ImageSource {
	t.Helper()
	g, err := identity.SignPullGrant(ca.Key, node, dgst, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &berthv1.ImageSource{Image: testRef, Peers: []string{peer}, PullGrants: [][]byte{g}}
}

func serveContent(t *testing.T, ca *testCA, h http.Handler) *httptest.Server {
	t.Helper()
	cert, key := ca.issue(t, identity.RoleNode, "node-alpha")
	creds, err := identity.NewLive(cert, key, ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := ServerTLS(creds)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = tlsCfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func peerClient(t *testing.T, ca *testCA) *http.Client {
	t.Helper()
	cert, key := ca.issue(t, identity.RoleNode, "node-beta")
	creds, err := identity.NewLive(cert, key, ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := PeerTLS(creds)
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestContentServer(t *testing.T) {
	ca := newTestCA(t)
	rt := newRuntime(t)
	img := importBusybox(t, rt)
	srv := contentServer(t, ca, rt)
	client := peerClient(t, ca)

	ctx := namespaces.WithNamespace(context.Background(), rt.Namespace())
	cs := rt.Client().ContentStore()
	info, err := cs.Info(ctx, digest.Digest(img.Digest))
	if err != nil {
		t.Fatal(err)
	}
	manifestBytes, err := content.ReadBlob(ctx, cs, ocispec.Descriptor{Digest: info.Digest, Size: info.Size})
	if err != nil {
		t.Fatal(err)
	}
	mediaType, err := mediaTypeOf(bytes.NewReader(manifestBytes))
	if err != nil {
		t.Fatal(err)
	}
	// A blob the image names: the first one below its manifest.
	var layer digest.Digest
	var m ocispec.Manifest
	if mediaType == ocispec.MediaTypeImageManifest {
		if err := json.Unmarshal(manifestBytes, &m); err != nil {
			t.Fatal(err)
		}
		layer = m.Layers[0].Digest
	} else {
		t.Fatalf("test image manifest has type %s, want an image manifest", mediaType)
	}
	info, err = cs.Info(ctx, layer)
	if err != nil {
		t.Fatal(err)
	}

	// Another image on the node, not granted to the client.
	var other bytes.Buffer
	files, _ := testimage.BusyboxFiles("/usr/bin/busybox")
	if err := testimage.WriteOCIArchive(&other, "localhost/other:1", append(files, testimage.File{Path: "/other", Content: []byte("x")}), testimage.Config{}); err != nil {
		t.Fatal(err)
	}
	otherImgs, err := rt.ImportImage(context.Background(), &other)
	if err != nil || len(otherImgs) != 1 {
		t.Fatalf("import the other image: %v %v", otherImgs, err)
	}
	unknown := "sha256:" + strings.Repeat("0", 64)
	own := ca.grant(t, "node-beta", img.Digest)
	otherCA := newTestCA(t)
	tests := []struct {
		name, method, path string
		grant              string
		status             int
		digest, mediaType  string
		length             int64
	}{
		{"base", "GET", "/v2/", "", 200, "", "application/json", 2},
		{"manifest by digest", "GET", "/v2/busybox/manifests/" + img.Digest + "?ns=localhost", own, 200, img.Digest, mediaType, int64(len(manifestBytes))},
		{"manifest by digest, head", "HEAD", "/v2/localhost/busybox/manifests/" + img.Digest, own, 200, img.Digest, mediaType, int64(len(manifestBytes))},
		{"blob", "GET", "/v2/busybox/blobs/" + layer.String(), own, 200, layer.String(), "application/octet-stream", info.Size},
		{"blob head", "HEAD", "/v2/busybox/blobs/" + layer.String(), own, 200, layer.String(), "application/octet-stream", info.Size},
		{"manifest by tag is refused", "GET", "/v2/busybox/manifests/latest?ns=localhost", own, 403, "", "application/json", -1},
		{"manifest by digest without a grant", "GET", "/v2/busybox/manifests/" + img.Digest, "", 403, "", "application/json", -1},
		{"blob without a grant", "GET", "/v2/busybox/blobs/" + layer.String(), "", 403, "", "application/json", -1},
		{"a grant for another node", "GET", "/v2/busybox/manifests/" + img.Digest, ca.grant(t, "node-gamma", img.Digest), 403, "", "application/json", -1},
		{"a grant of another cluster", "GET", "/v2/busybox/manifests/" + img.Digest, otherCA.grant(t, "node-beta", img.Digest), 403, "", "application/json", -1},
		{"a digest on the node but not granted", "GET", "/v2/other/manifests/" + otherImgs[0].Digest, own, 403, "", "application/json", -1},
		{"a granted digest the node lacks", "GET", "/v2/busybox/manifests/" + unknown, ca.grant(t, "node-beta", unknown), 404, "", "application/json", -1},
		{"a blob outside the granted image", "GET", "/v2/busybox/blobs/sha256:" + strings.Repeat("1", 64), own, 403, "", "application/json", -1},
		{"bad digest", "GET", "/v2/busybox/blobs/sha256:zz", own, 400, "", "application/json", -1},
		{"not the API", "GET", "/other", own, 404, "", "application/json", -1},
		{"write", "PUT", "/v2/busybox/manifests/" + img.Digest, own, 405, "", "application/json", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.grant != "" {
				req.Header.Set(HeaderPullGrant, tt.grant)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.mediaType {
				t.Errorf("Content-Type %q, want %q", got, tt.mediaType)
			}
			if got := resp.Header.Get(HeaderNode); got != "alpha" {
				t.Errorf("%s %q, want alpha", HeaderNode, got)
			}
			if tt.digest != "" && resp.Header.Get("Docker-Content-Digest") != tt.digest {
				t.Errorf("Docker-Content-Digest %q, want %q", resp.Header.Get("Docker-Content-Digest"), tt.digest)
			}
			if tt.length >= 0 && resp.ContentLength != tt.length {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, tt.length)
			}
			if tt.method == "GET" && tt.status == 200 && tt.digest != "" && digest.FromBytes(body).String() != tt.digest {
				t.Errorf("body digest %s, want %s", digest.FromBytes(body), tt.digest)
			}
		})
	}
}

func TestContentServerRefusesStrangers(t *testing.T) {
	ca := newTestCA(t)
	rt := newRuntime(t)
	srv := contentServer(t, ca, rt)
	other := newTestCA(t)
	cert, key := other.issue(t, identity.RoleNode, "intruder")
	foreign, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	tests := []struct {
		name string
		cfg  *tls.Config
	}{
		{"no certificate", &tls.Config{RootCAs: pool, ServerName: "node-alpha"}},
		{"another cluster's certificate", &tls.Config{RootCAs: pool, ServerName: "node-alpha", Certificates: []tls.Certificate{foreign}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: tt.cfg}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/v2/")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("a client with %s got %s, want the TLS handshake refused", tt.name, resp.Status)
			}
		})
	}
}

// TestPullFromPeer pulls an image from one namespace's content server
// into another namespace, as one node does from another, pinned by
// digest, and runs nothing: the image must be complete and unpacked.
func TestPullFromPeer(t *testing.T) {
	ca := newTestCA(t)
	alpha, beta := newRuntime(t), newRuntime(t)
	img := importBusybox(t, alpha)
	srv := contentServer(t, ca, alpha)
	cert, key := ca.issue(t, identity.RoleNode, "node-beta")
	creds, err := identity.NewLive(cert, key, ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	peerTLS := PeerTLS(creds)
	var progress []Progress
	p := NewPuller(PullerConfig{Runtime: beta, PeerTLS: peerTLS})
	src := strings.TrimPrefix(srv.URL, "https://")
	got, err := p.Pull(context.Background(), testRef, img.Digest, ca.grantedSource(t, src, "node-beta", img.Digest), func(pr Progress) {
		progress = append(progress, pr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != testRef || got.Digest != img.Digest {
		t.Fatalf("pulled %s %s, want %s %s", got.Name, got.Digest, testRef, img.Digest)
	}
	images, err := beta.ListImages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].Name != testRef || images[0].Digest != img.Digest {
		t.Fatalf("the pulling node holds %+v, want only %s at %s (no pinned record left)", images, testRef, img.Digest)
	}
	if len(progress) == 0 || progress[len(progress)-1].From != "peer alpha" {
		t.Fatalf("progress %+v, want reports from peer alpha", progress)
	}
	last := progress[len(progress)-1]
	if last.Total == 0 || last.Done != last.Total {
		t.Errorf("last progress %+v, want complete", last)
	}
	// The unpacked image can make a container.
	if err := beta.Create(context.Background(), runtime.ContainerSpec{ID: "pulled", Image: testRef}); err != nil {
		t.Fatalf("create from the pulled image: %v", err)
	}
	t.Cleanup(func() { beta.Remove(context.Background(), "pulled") })
}

// TestPullRefusesCorruptPeer: a peer that answers the granted manifest but
// sends a layer whose bytes do not match its digest gets nothing stored:
// the pull fails over to the registry (absent here) and the node holds no
// image. The image exists only in the peer (an OCI layout held in memory,
// with a random file so no namespace of the shared containerd has its
// blobs), so every byte goes through the transfer.
func TestPullRefusesCorruptPeer(t *testing.T) {
	ca := newTestCA(t)
	beta := newRuntime(t)
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		t.Skipf("no busybox to build the test image: %v", err)
	}
	noise := make([]byte, 32)
	rand.Read(noise)
	var buf bytes.Buffer
	if err := testimage.WriteOCIArchive(&buf, testRef, append(files, testimage.File{Path: "/noise", Content: noise}), testimage.Config{}); err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	var index ocispec.Index
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Name == "index.json" {
			json.Unmarshal(b, &index)
		} else if hex, ok := strings.CutPrefix(h.Name, "blobs/sha256/"); ok {
			blobs["sha256:"+hex] = b
		}
	}
	root := index.Manifests[0].Digest.String()
	srv := serveContent(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderNode, "alpha")
		d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		b, ok := blobs[d]
		if !ok {
			writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", "no")
			return
		}
		mt := "application/octet-stream"
		if strings.Contains(r.URL.Path, "/manifests/") {
			mt = index.Manifests[0].MediaType
		} else if d != root && len(b) > 1024 { // the layer, not the config
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xff // same size, other bytes
		}
		w.Header().Set("Content-Type", mt)
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	}))
	cert, key := ca.issue(t, identity.RoleNode, "node-beta")
	creds, err := identity.NewLive(cert, key, ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPuller(PullerConfig{Runtime: beta, PeerTLS: PeerTLS(creds)})
	peer := strings.TrimPrefix(srv.URL, "https://")
	_, err = p.Pull(context.Background(), testRef, root, ca.grantedSource(t, peer, "node-beta", root), nil)
	if err == nil || !strings.Contains(err.Error(), "peer alpha") {
		t.Fatalf("pull from a corrupting peer = %v, want an error naming peer alpha", err)
	}
	t.Logf("refused: %v", err)
	images, err := beta.ListImages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(images) != 0 {
		t.Fatalf("the pulling node holds %+v after a corrupt transfer, want nothing", images)
	}
}
