// Package httpapi serves the cluster API (berthv1.ClusterService) as
// HTTP/JSON: every RPC is POST /berth.v1.ClusterService/<Method> with the
// request message as a JSON body, answered with the response message as
// JSON (server streams as newline-delimited JSON, one {"result": ...} a
// line). The OpenAPI document is served at /openapi.json.
//
// A request is let through when it carries the admin client certificate,
// as the CLI does, or "Authorization: Bearer <API token>" with a token made
// by `berth token create`. The gateway then forwards the call over a gRPC
// connection of its own (Config.Conn), so every call takes the same path
// through the cluster API as the CLI's.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/api/openapi"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
)

// OpenAPIPath is where the OpenAPI document is served, without
// authentication.
const OpenAPIPath = "/openapi.json"

// TokenChecker checks API tokens. CheckAPIToken fails with an error
// wrapping apiserver.ErrAPITokenInvalid (the caller's fault: 401) or with
// another error (the token store could not be read: 503).
type TokenChecker interface {
	CheckAPIToken(ctx context.Context, bearer string) (*berthv1.APIToken, error)
}

// Config holds what the HTTP/JSON API needs.
type Config struct {
	// Client is the cluster API that requests are forwarded to.
	Client berthv1.ClusterServiceClient
	// Tokens checks bearer tokens.
	Tokens TokenChecker
	// Admits reports whether a client certificate's holder may call the
	// cluster API: the same rule the gRPC server applies.
	Admits func(identity.Identity) bool
	// Version is shown as the OpenAPI document's version.
	Version string
	Log     *slog.Logger
}

// Handler is the HTTP/JSON API.
type Handler struct {
	cfg     Config
	gateway *runtime.ServeMux
	openapi []byte
}

var _ http.Handler = (*Handler)(nil)

// New returns the HTTP/JSON API handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	doc, err := openAPIDocument(cfg.Version)
	if err != nil {
		return nil, err
	}
	mux := runtime.NewServeMux()
	// The context is only kept by handlers registered from an endpoint,
	// which this one is not: the client's connection is the caller's.
	if err := berthv1.RegisterClusterServiceHandlerClient(context.Background(), mux, cfg.Client); err != nil {
		return nil, fmt.Errorf("registering the HTTP/JSON gateway: %w", err)
	}
	return &Handler{cfg: cfg, gateway: mux, openapi: doc}, nil
}

// ServeHTTP serves the OpenAPI document to anyone and the API to
// authenticated clients.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == OpenAPIPath {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, OpenAPIPath+" is read with GET")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(h.openapi)
		return
	}
	if status, code, msg := h.authenticate(r); status != http.StatusOK {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		}
		writeError(w, status, code, msg)
		return
	}
	// The token has done its work; it goes no further than this handler.
	r.Header.Del("Authorization")
	h.gateway.ServeHTTP(w, r)
}

// howToAuthenticate ends every authentication failure's message.
const howToAuthenticate = "send Authorization: Bearer <token> with a token from `berth token create NAME`, or present the admin client certificate from the config `berth server` wrote"

// authenticate returns http.StatusOK when the request may call the API, or
// the status, gRPC code and message to refuse it with. A bearer token, when
// sent, decides alone: a bad token is refused even over a connection with
// a good certificate, so that a client learns its token is wrong.
func (h *Handler) authenticate(r *http.Request) (int, codes.Code, string) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, bearer, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return http.StatusUnauthorized, codes.Unauthenticated, "the Authorization header is not \"Bearer <token>\"; " + howToAuthenticate
		}
		_, err := h.cfg.Tokens.CheckAPIToken(r.Context(), strings.TrimSpace(bearer))
		switch {
		case err == nil:
			return http.StatusOK, codes.OK, ""
		case errors.Is(err, apiserver.ErrAPITokenInvalid):
			return http.StatusUnauthorized, codes.Unauthenticated, err.Error()
		default:
			h.cfg.Log.Warn("API token could not be checked", "err", err)
			return http.StatusServiceUnavailable, codes.Unavailable, fmt.Sprintf("the API token could not be checked: %v; try again", err)
		}
	}
	if r.TLS != nil {
		if who, ok := identity.FromConnectionState(*r.TLS); ok {
			if h.cfg.Admits != nil && h.cfg.Admits(who) {
				return http.StatusOK, codes.OK, ""
			}
			return http.StatusForbidden, codes.PermissionDenied, fmt.Sprintf("%s may not call the cluster API; %s", who, howToAuthenticate)
		}
	}
	return http.StatusUnauthorized, codes.Unauthenticated, "authentication required: " + howToAuthenticate
}

// apiError is the body of an error, in the shape the gateway gives its own
// errors (a google.rpc.Status), so clients parse one shape.
type apiError struct {
	Code    codes.Code `json:"code"`
	Message string     `json:"message"`
	Details []any      `json:"details"`
}

func writeError(w http.ResponseWriter, status int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(apiError{Code: code, Message: msg, Details: []any{}})
}

// openAPIDocument is the generated document with the server's version and
// a title and security schemes that the protos do not carry.
func openAPIDocument(version string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		return nil, fmt.Errorf("the embedded OpenAPI document is not JSON: %w", err)
	}
	if version == "" {
		version = "dev"
	}
	doc["info"] = map[string]any{
		"title":       "Berth cluster API",
		"version":     version,
		"description": "Every method is POST /berth.v1.ClusterService/<Method> with a JSON body. Authenticate with the admin client certificate or Authorization: Bearer <token> (berth token create NAME).",
	}
	doc["schemes"] = []string{"https"}
	doc["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{"type": "apiKey", "name": "Authorization", "in": "header",
			"description": "Bearer <token>, with a token from `berth token create NAME`"},
	}
	doc["security"] = []any{map[string]any{"bearer": []string{}}}
	return json.MarshalIndent(doc, "", "  ")
}
