// Package image moves images between nodes and registries: ContentServer
// serves a node's content store to its peers, read-only, over the OCI
// distribution API; Puller fetches the image of a task from the local
// store, a peer or the registry, in that order; Cleanup removes unused
// images when the disk fills up.
package image

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/berthproject/berth/api/identity"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HeaderNode is the response header that names the node serving content,
// so a puller can say which peer it tried.
const HeaderNode = "Berth-Node"

// maxManifestSize bounds how much of a manifest is read to find its media
// type; real manifests are a few kilobytes.
const maxManifestSize = 4 << 20

// HeaderPullGrant is the request header that carries a node's pull grant
// (a SignedPullGrant, base64), so the peer knows which digest the control
// plane assigned the requesting node.
const HeaderPullGrant = "Berth-Pull-Grant"

// ContentServerConfig says what a ContentServer serves.
type ContentServerConfig struct {
	Content content.Store
	// Grants checks the pull grant of each request against the cluster
	// CA; nil refuses every request for content.
	Grants *identity.PullGrantVerifier
	// Namespace is the containerd namespace of the node's images.
	Namespace string
	// NodeName is sent in the HeaderNode header of every answer.
	NodeName string
	Log      *slog.Logger
}

// ContentServer answers the read side of the OCI distribution API
// (GET and HEAD of /v2/, manifests and blobs) from a containerd content
// store, to other nodes only, and only by digest: a request must carry a
// pull grant the cluster CA signed for the requesting node (named by its
// client certificate), and gets the granted manifest and the content it
// references, nothing else. Tags are never resolved here: what a tag
// stands for is decided by the control plane, not by a peer.
type ContentServer struct {
	cfg ContentServerConfig

	mu sync.Mutex
	// reachable caches, per granted root digest, the digests below it.
	// Content is addressed by digest, so an entry never goes stale.
	reachable map[digest.Digest]map[digest.Digest]bool
}

// maxReachableCache bounds the cache of reachable sets.
const maxReachableCache = 256

// NewContentServer returns a server of cfg's stores.
func NewContentServer(cfg ContentServerConfig) *ContentServer {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &ContentServer{cfg: cfg, reachable: map[digest.Digest]map[digest.Digest]bool{}}
}

// apiError is one error of the distribution API's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (s *ContentServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if s.cfg.NodeName != "" {
		w.Header().Set(HeaderNode, s.cfg.NodeName)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this node serves its images read-only")
		return
	}
	ctx := namespaces.WithNamespace(r.Context(), s.cfg.Namespace)
	path := r.URL.Path
	if path == "/v2" || path == "/v2/" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			io.WriteString(w, "{}")
		}
		return
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a distribution API path")
		return
	}
	var kind, ref string
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		kind, ref = "manifest", rest[i+len("/manifests/"):]
	} else if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		kind, ref = "blob", rest[i+len("/blobs/"):]
	} else {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a distribution API path")
		return
	}
	d, err := digest.Parse(ref)
	if err != nil {
		if kind == "manifest" {
			writeError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("manifest %q: peers serve manifests by digest only; tags are resolved by the control plane", ref))
			return
		}
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("blob %q: %v", ref, err))
		return
	}
	if status, msg := s.authorize(ctx, r, d); status != 0 {
		writeError(w, status, "DENIED", msg)
		return
	}
	if kind == "manifest" {
		s.manifest(ctx, w, r, d)
		return
	}
	s.blob(ctx, w, r, d)
}

// authorize checks that the request carries a pull grant for the node
// its client certificate names, and that d is the granted manifest or
// content below it. It returns 0 when it does, else the status and reason
// to answer with.
func (s *ContentServer) authorize(ctx context.Context, r *http.Request, d digest.Digest) (int, string) {
	if s.cfg.Grants == nil {
		return http.StatusForbidden, "this node serves no content to peers"
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return http.StatusUnauthorized, "a node's client certificate is required"
	}
	id, err := identity.FromCertificate(r.TLS.PeerCertificates[0])
	if err != nil || id.Role != identity.RoleNode {
		return http.StatusForbidden, "only nodes fetch content from peers"
	}
	raw := r.Header.Get(HeaderPullGrant)
	if raw == "" {
		return http.StatusForbidden, "no pull grant: peers serve only digests the control plane assigned to the requesting node"
	}
	signed, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return http.StatusForbidden, "the pull grant is not base64"
	}
	g, err := s.cfg.Grants.Verify(signed, id.ID)
	if err != nil {
		return http.StatusForbidden, err.Error()
	}
	root := digest.Digest(g.Digest)
	if d == root {
		return 0, ""
	}
	below, err := s.below(ctx, root)
	if err != nil {
		return http.StatusInternalServerError, fmt.Sprintf("reading manifest %s: %v", root, err)
	}
	if !below[d] {
		return http.StatusForbidden, fmt.Sprintf("%s is not part of the granted image %s", d, root)
	}
	return 0, ""
}

// below returns the digests that root references, directly or through
// nested manifests, as far as this node holds them (a node keeps only its
// own platform's manifest of an index).
func (s *ContentServer) below(ctx context.Context, root digest.Digest) (map[digest.Digest]bool, error) {
	s.mu.Lock()
	set, ok := s.reachable[root]
	s.mu.Unlock()
	if ok {
		return set, nil
	}
	set = map[digest.Digest]bool{}
	info, err := s.cfg.Content.Info(ctx, root)
	if errdefs.IsNotFound(err) {
		return set, nil // the request then answers 404 for the root
	}
	if err != nil {
		return nil, err
	}
	queue := []ocispec.Descriptor{{Digest: root, Size: info.Size}}
	for len(queue) > 0 {
		desc := queue[0]
		queue = queue[1:]
		children, err := s.children(ctx, desc)
		if err != nil {
			return nil, err
		}
		for _, c := range children {
			if !set[c.Digest] {
				set[c.Digest] = true
				queue = append(queue, c)
			}
		}
	}
	s.mu.Lock()
	if len(s.reachable) >= maxReachableCache {
		clear(s.reachable)
	}
	s.reachable[root] = set
	s.mu.Unlock()
	return set, nil
}

// children reads desc when it is a manifest or an index (or a blob of
// unknown type that parses as one) and returns what it references; a
// layer, a config, or content this node lacks has none.
func (s *ContentServer) children(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if desc.Size > maxManifestSize || (desc.MediaType != "" && !images.IsManifestType(desc.MediaType) && !images.IsIndexType(desc.MediaType)) {
		return nil, nil
	}
	if desc.Size == 0 {
		info, err := s.cfg.Content.Info(ctx, desc.Digest)
		if errdefs.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		desc.Size = info.Size
	}
	b, err := content.ReadBlob(ctx, s.cfg.Content, desc)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m struct {
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if json.Unmarshal(b, &m) != nil {
		return nil, nil
	}
	out := append(m.Manifests, m.Layers...)
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	return out, nil
}

func (s *ContentServer) manifest(ctx context.Context, w http.ResponseWriter, r *http.Request, d digest.Digest) {
	info, err := s.cfg.Content.Info(ctx, d)
	if err != nil {
		s.notFound(w, err, "MANIFEST_UNKNOWN", "manifest "+d.String()+" is not on this node")
		return
	}
	desc := ocispec.Descriptor{Digest: d, Size: info.Size}
	ra, err := s.cfg.Content.ReaderAt(ctx, desc)
	if err != nil {
		s.notFound(w, err, "MANIFEST_UNKNOWN", "manifest "+desc.Digest.String()+" is not on this node")
		return
	}
	defer ra.Close()
	if desc.MediaType == "" {
		if desc.MediaType, err = mediaTypeOf(io.NewSectionReader(ra, 0, min(ra.Size(), maxManifestSize))); err != nil {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", fmt.Sprintf("manifest %s: %v", desc.Digest, err))
			return
		}
	}
	s.send(w, r, desc.MediaType, desc.Digest, io.NewSectionReader(ra, 0, ra.Size()), ra.Size())
}

func (s *ContentServer) blob(ctx context.Context, w http.ResponseWriter, r *http.Request, d digest.Digest) {
	ref := d.String()
	info, err := s.cfg.Content.Info(ctx, d)
	if err != nil {
		s.notFound(w, err, "BLOB_UNKNOWN", "blob "+ref+" is not on this node")
		return
	}
	ra, err := s.cfg.Content.ReaderAt(ctx, ocispec.Descriptor{Digest: d, Size: info.Size})
	if err != nil {
		s.notFound(w, err, "BLOB_UNKNOWN", "blob "+ref+" is not on this node")
		return
	}
	defer ra.Close()
	s.send(w, r, "application/octet-stream", d, io.NewSectionReader(ra, 0, ra.Size()), ra.Size())
}

func (s *ContentServer) send(w http.ResponseWriter, r *http.Request, mediaType string, d digest.Digest, body io.Reader, size int64) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Etag", `"`+d.String()+`"`)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, body); err != nil && r.Context().Err() == nil {
		s.cfg.Log.Warn("serving content to a peer", "digest", d, "peer", r.RemoteAddr, "err", err)
	}
}

// notFound answers 404 for a missing object, 500 for any other failure.
func (s *ContentServer) notFound(w http.ResponseWriter, err error, code, msg string) {
	if errdefs.IsNotFound(err) {
		writeError(w, http.StatusNotFound, code, msg)
		return
	}
	writeError(w, http.StatusInternalServerError, "UNKNOWN", fmt.Sprintf("%s: %v", msg, err))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Errors []apiError `json:"errors"`
	}{[]apiError{{Code: code, Message: msg}}})
}

// mediaTypeOf reads a manifest's media type from its mediaType field, or
// from its shape when the field is missing (it is optional in OCI).
func mediaTypeOf(r io.Reader) (string, error) {
	var m struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
		Layers    []json.RawMessage `json:"layers"`
	}
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return "", fmt.Errorf("not a manifest: %w", err)
	}
	switch {
	case m.MediaType != "":
		return m.MediaType, nil
	case m.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case m.Layers != nil:
		return ocispec.MediaTypeImageManifest, nil
	default:
		return "", errors.New("not a manifest: it has neither layers nor manifests")
	}
}
