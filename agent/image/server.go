// Package image moves images between nodes and registries: ContentServer
// serves a node's content store to its peers, read-only, over the OCI
// distribution API; Puller fetches the image of a task from the local
// store, a peer or the registry, in that order; Cleanup removes unused
// images when the disk fills up.
package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HeaderNode is the response header that names the node serving content,
// so a puller can say which peer it tried.
const HeaderNode = "Berth-Node"

// maxManifestSize bounds how much of a manifest is read to find its media
// type; real manifests are a few kilobytes.
const maxManifestSize = 4 << 20

// ContentServerConfig says what a ContentServer serves.
type ContentServerConfig struct {
	Content content.Store
	Images  images.Store
	// Namespace is the containerd namespace of the node's images.
	Namespace string
	// NodeName is sent in the HeaderNode header of every answer.
	NodeName string
	Log      *slog.Logger
}

// ContentServer answers the read side of the OCI distribution API
// (GET and HEAD of /v2/, manifests and blobs) from a containerd content
// store. A tag is looked up in the image store by the image's full name:
// "/v2/<path>/manifests/<tag>" with "?ns=<registry host>" (what clients
// add when they use a mirror) names image "<host>/<path>:<tag>".
type ContentServer struct {
	cfg ContentServerConfig
}

// NewContentServer returns a server of cfg's stores.
func NewContentServer(cfg ContentServerConfig) *ContentServer {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &ContentServer{cfg: cfg}
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
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		s.manifest(ctx, w, r, rest[:i], rest[i+len("/manifests/"):])
		return
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		s.blob(ctx, w, r, rest[i+len("/blobs/"):])
		return
	}
	writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a distribution API path")
}

func (s *ContentServer) manifest(ctx context.Context, w http.ResponseWriter, r *http.Request, repo, ref string) {
	var desc ocispec.Descriptor
	if d, err := digest.Parse(ref); err == nil {
		info, err := s.cfg.Content.Info(ctx, d)
		if err != nil {
			s.notFound(w, err, "MANIFEST_UNKNOWN", "manifest "+ref+" is not on this node")
			return
		}
		desc = ocispec.Descriptor{Digest: d, Size: info.Size}
	} else {
		name, err := imageName(r.URL.Query().Get("ns"), repo, ref)
		if err != nil {
			writeError(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
			return
		}
		img, err := s.cfg.Images.Get(ctx, name)
		if err != nil {
			s.notFound(w, err, "MANIFEST_UNKNOWN", "image "+name+" is not on this node")
			return
		}
		desc = img.Target
	}
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

func (s *ContentServer) blob(ctx context.Context, w http.ResponseWriter, r *http.Request, ref string) {
	d, err := digest.Parse(ref)
	if err != nil {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("blob %q: %v", ref, err))
		return
	}
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

// imageName is the full name of the image a tag request asks for: the
// registry host comes from the ns query parameter when the client sent
// one, else the repository path is read as a name on its own.
func imageName(host, repo, tag string) (string, error) {
	ref := repo + ":" + tag
	if host != "" {
		ref = host + "/" + ref
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	return named.String(), nil
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
