// Package web serves the web dashboard at /ui/: a page of plain HTML, CSS
// and JavaScript, embedded in the binary, that shows the cluster's apps,
// services, tasks, nodes, images and events live and acts on them through
// the HTTP/JSON API (package httpapi) with an API token the user enters.
// Its pages are hash routes (#/services/NS/APP/SERVICE, #/nodes/NODE, ...)
// so they can be linked to; its terminal draws with xterm.js, copied into
// assets/vendor/ from a release (see the README there), and talks to the
// exec WebSocket of package httpapi.
//
// The page itself needs no authentication; everything it shows comes from
// the JSON API, which does. The one endpoint of its own, Compose
// conversion, checks the same bearer token.
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/berthproject/berth/api/access"
	"github.com/berthproject/berth/api/compose"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/httpapi"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Prefix is the path the dashboard is served under.
const Prefix = "/ui/"

// composePath converts a Compose file into services for Apply.
const composePath = Prefix + "compose"

// maxComposeBytes bounds a pasted Compose file.
const maxComposeBytes = 1 << 20

//go:embed assets
var assets embed.FS

// Config holds what the dashboard needs.
type Config struct {
	// Tokens checks the bearer token of Compose conversions.
	Tokens httpapi.TokenChecker
	Log    *slog.Logger
}

// Handler serves the dashboard.
type Handler struct {
	cfg    Config
	assets fs.FS
	// started is the assets' modification time, for conditional requests.
	started time.Time
}

var _ http.Handler = (*Handler)(nil)

// New returns the dashboard handler, to be mounted at Prefix and at the
// same path without its trailing slash.
func New(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		// The directory is embedded at build time; this cannot fail.
		panic(err)
	}
	return &Handler{cfg: cfg, assets: sub, started: time.Now()}
}

// ServeHTTP serves the page and its assets, and converts Compose files.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	if r.URL.Path == composePath {
		h.convertCompose(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard is read with GET", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	// Only files at the top of the assets and in vendor/ (libraries
	// copied from their releases) are served: no directories, so no
	// listings.
	if strings.Contains(strings.TrimPrefix(name, "vendor/"), "/") || name != path.Clean(name) {
		http.NotFound(w, r)
		return
	}
	content, err := fs.ReadFile(h.assets, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	// xterm.js draws its terminal with <style> elements it makes; style
	// attributes and scripts stay 'self' only.
	hdr.Set("Content-Security-Policy", "default-src 'self'; style-src-elem 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	hdr.Set("Cache-Control", "no-cache")
	// ServeContent sets the content type from the name's extension.
	http.ServeContent(w, r, name, h.started, bytes.NewReader(content))
}

// composeRequest is the body of a Compose conversion.
type composeRequest struct {
	// App names the app; empty means the file's name:, else "app".
	App     string `json:"app"`
	Compose string `json:"compose"`
}

// composeResponse is what a conversion answers: the app and its services
// as an ApplyRequest takes them.
type composeResponse struct {
	App      string            `json:"app"`
	Services []json.RawMessage `json:"services"`
	// Networks, Volumes, Secrets and Configs are the app's definitions.
	// The dashboard's files cannot read the server's files or
	// environment (compose.LoadBytes refuses file: and the like), so
	// secrets and configs carry inline content only.
	Networks []json.RawMessage `json:"networks"`
	Volumes  []json.RawMessage `json:"volumes"`
	Secrets  []json.RawMessage `json:"secrets"`
	Configs  []json.RawMessage `json:"configs"`
	Warnings []string          `json:"warnings"`
}

// marshalAll encodes each message as the JSON API does.
func marshalAll[M proto.Message](what string, msgs []M) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	for _, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", what, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// convertCompose answers a POSTed Compose file with the services it
// describes, so that the page can preview (Apply with dry_run) and apply
// them through the JSON API.
func (h *Handler) convertCompose(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, composePath+" takes a POST")
		return
	}
	// LoadBytes refuses every key that would read the server's files or
	// environment. Converting still needs a credential of at least a
	// viewer: it reads nothing of the cluster, but costs the server work.
	scheme, bearer, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(bearer) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		writeError(w, http.StatusUnauthorized, "send Authorization: Bearer <token> with a token from `berth token create NAME`")
		return
	}
	tok, err := h.cfg.Tokens.CheckAPIToken(r.Context(), strings.TrimSpace(bearer))
	if err != nil {
		if errors.Is(err, apiserver.ErrAPITokenInvalid) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h.cfg.Log.Warn("API token could not be checked", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the API token could not be checked: "+err.Error()+"; try again")
		return
	}
	if p := apiserver.TokenPrincipal(tok); access.LevelOf(p.Role) < access.Viewer {
		writeError(w, http.StatusForbidden, fmt.Sprintf("%s is a %s; converting a Compose file needs at least the viewer role", p, p.Role))
		return
	}
	var req composeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxComposeBytes)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body is not {\"app\": ..., \"compose\": ...} of at most 1 MiB: "+err.Error())
		return
	}
	p, err := compose.LoadBytes(r.Context(), []byte(req.Compose), compose.Options{Project: req.App})
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp := composeResponse{App: p.App, Warnings: p.Warnings}
	var errs [5]error
	resp.Services, errs[0] = marshalAll("services", p.Services)
	resp.Networks, errs[1] = marshalAll("networks", p.Networks)
	resp.Volumes, errs[2] = marshalAll("volumes", p.Volumes)
	resp.Secrets, errs[3] = marshalAll("secrets", p.Secrets)
	resp.Configs, errs[4] = marshalAll("configs", p.Configs)
	if err := errors.Join(errs[:]...); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// writeError answers with status and {"message": msg}, the shape the JSON
// API's errors have.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
