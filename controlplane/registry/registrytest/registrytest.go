// Package registrytest serves a registry's API on loopback for tests: the
// login check (GET /v2/, with basic or bearer authentication) and tag
// resolution (HEAD of a manifest). It serves no blobs.
package registrytest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Auth is how the fake registry asks clients to authenticate.
type Auth int

// The authentication schemes.
const (
	// NoAuth serves everyone.
	NoAuth Auth = iota
	// Basic answers 401 with a Basic challenge until the credential is
	// sent.
	Basic
	// Bearer sends clients to its token endpoint, which takes the
	// credential by basic authentication and hands out a token.
	Bearer
)

const token = "registrytest-token"

// Registry is a fake registry.
type Registry struct {
	// Host is host:port, to name images by ("127.0.0.1:41234/app:1").
	Host string

	auth           Auth
	user, password string

	mu        sync.Mutex
	manifests map[string]string // "repo:tag" to digest
	heads     int
}

// New starts a fake registry over plain HTTP that accepts user and
// password (unused with NoAuth); it stops when the test ends.
func New(t testing.TB, auth Auth, user, password string) *Registry {
	t.Helper()
	r := &Registry{auth: auth, user: user, password: password, manifests: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// SetManifest makes repo:tag resolve to digest.
func (r *Registry) SetManifest(repo, tag, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifests[repo+":"+tag] = digest
}

// Heads is how many manifest HEAD requests were answered.
func (r *Registry) Heads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heads
}

func (r *Registry) authorized(req *http.Request) bool {
	switch r.auth {
	case Basic:
		u, p, ok := req.BasicAuth()
		return ok && u == r.user && p == r.password
	case Bearer:
		return req.Header.Get("Authorization") == "Bearer "+token
	}
	return true
}

func (r *Registry) challenge(w http.ResponseWriter, req *http.Request) {
	switch r.auth {
	case Basic:
		w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
	case Bearer:
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+req.Host+`/token",service="registrytest"`)
	}
	w.WriteHeader(http.StatusUnauthorized)
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/token" {
		if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.password {
			http.Error(w, "bad credential", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": token})
		return
	}
	if !strings.HasPrefix(req.URL.Path, "/v2/") {
		http.NotFound(w, req)
		return
	}
	if !r.authorized(req) {
		r.challenge(w, req)
		return
	}
	if req.URL.Path == "/v2/" {
		return
	}
	repo, tag, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/")
	if !ok {
		http.NotFound(w, req)
		return
	}
	r.mu.Lock()
	digest, found := r.manifests[repo+":"+tag]
	r.heads++
	r.mu.Unlock()
	if !found {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", "2")
	if req.Method != http.MethodHead {
		w.Write([]byte("{}"))
	}
}
