// Package httpapi serves the cluster API (berthv1.ClusterService) as
// HTTP/JSON: every RPC is POST /berth.v1.ClusterService/<Method> with the
// request message as a JSON body, answered with the response message as
// JSON (server streams as newline-delimited JSON, one {"result": ...} a
// line). The OpenAPI document is served at /openapi.json, and the
// dashboard's terminal WebSocket, bridged to Exec, at /exec/ws (ExecPath).
//
// A request is let through when it carries a client certificate of the
// cluster, as the CLI does, or "Authorization: Bearer <API token>" with a
// token made by `berth token create`. The gateway then forwards the call
// over a gRPC connection of its own (Config.Client), so every call takes
// the same path through the cluster API as the CLI's, and is authorised
// there, by the same table, as its HTTP caller: the bearer token goes on
// as the call's "authorization" metadata; a client certificate's
// principal goes on as PrincipalMetadata, which the gRPC server believes
// only over a connection whose own certificate is a server's (the
// gateway's), and which this handler never forwards from a client.
package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/openapi"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
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
	mux := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithMetadata(func(ctx context.Context, _ *http.Request) metadata.MD {
			md, _ := ctx.Value(forwardKey{}).(metadata.MD)
			return md
		}),
		runtime.WithForwardResponseOption(openStream),
	)
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
	if r.URL.Path == ExecPath {
		h.serveExec(w, r)
		return
	}
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
	fwd, status, code, msg := h.authenticate(r)
	if status != http.StatusOK {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		}
		writeError(w, status, code, msg)
		return
	}
	// The caller goes on only as the metadata authenticate made, with
	// its address for the audit log.
	r.Header.Del("Authorization")
	fwd.Set(ForwardedForMetadata, r.RemoteAddr)
	h.gateway.ServeHTTP(&headerOnce{ResponseWriter: w}, r.WithContext(context.WithValue(r.Context(), forwardKey{}, fwd)))
}

// forwardKey keys, in a request's context, the metadata that tells the
// gRPC server who the HTTP caller is.
type forwardKey struct{}

// PrincipalMetadata is the gRPC metadata key that carries the principal
// of an HTTP caller who authenticated with a client certificate.
const PrincipalMetadata = "berth-forwarded-principal"

// ForwardedForMetadata is the gRPC metadata key that carries the address
// of the HTTP caller, which the gRPC server takes for the call's peer.
const ForwardedForMetadata = "berth-forwarded-for"

// headerMatcher forwards HTTP headers as gRPC metadata as the gateway
// does by default, except those that name the caller: only authenticate
// sets them.
func headerMatcher(key string) (string, bool) {
	switch strings.ToLower(strings.TrimPrefix(key, runtime.MetadataHeaderPrefix)) {
	case PrincipalMetadata, ForwardedForMetadata, "authorization":
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// EncodePrincipal is p as a PrincipalMetadata value.
func EncodePrincipal(p access.Principal) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodePrincipal reads a PrincipalMetadata value.
func DecodePrincipal(v string) (access.Principal, error) {
	var p access.Principal
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, err
	}
	if p.Kind == "" || p.Name == "" || p.Role == "" {
		return p, errors.New("it names no kind, name or role")
	}
	return p, nil
}

// howToAuthenticate ends every authentication failure's message.
const howToAuthenticate = "send Authorization: Bearer <token> with a token from `berth token create NAME`, or present a client certificate of the cluster (from the config `berth server` or `berth user create` wrote)"

// authenticate returns http.StatusOK and the metadata that carries the
// caller to the gRPC server when the request may go on, or the status,
// gRPC code and message to refuse it with. A bearer token, when sent,
// decides alone: a bad token is refused even over a connection with a good
// certificate, so that a client learns its token is wrong. What the caller
// may do is decided by the gRPC server, from the access table.
func (h *Handler) authenticate(r *http.Request) (metadata.MD, int, codes.Code, string) {
	return h.authenticateCredential(r.Context(), r.Header.Get("Authorization"), r.TLS)
}

// authenticateCredential is authenticate for an Authorization value (or
// "") and the connection's TLS state: the exec WebSocket, whose token
// comes in its first message, takes the same path.
func (h *Handler) authenticateCredential(ctx context.Context, auth string, cs *tls.ConnectionState) (metadata.MD, int, codes.Code, string) {
	if auth != "" {
		scheme, bearer, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, http.StatusUnauthorized, codes.Unauthenticated, "the Authorization header is not \"Bearer <token>\"; " + howToAuthenticate
		}
		bearer = strings.TrimSpace(bearer)
		_, err := h.cfg.Tokens.CheckAPIToken(ctx, bearer)
		switch {
		case err == nil:
			return metadata.Pairs("authorization", "Bearer "+bearer), http.StatusOK, codes.OK, ""
		case errors.Is(err, apiserver.ErrAPITokenInvalid):
			return nil, http.StatusUnauthorized, codes.Unauthenticated, err.Error()
		default:
			h.cfg.Log.Warn("API token could not be checked", "err", err)
			return nil, http.StatusServiceUnavailable, codes.Unavailable, fmt.Sprintf("the API token could not be checked: %v; try again", err)
		}
	}
	if cs != nil && len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		p, err := access.FromCertificate(cs.VerifiedChains[0][0])
		if err != nil {
			return nil, http.StatusUnauthorized, codes.Unauthenticated, fmt.Sprintf("the client certificate names no Berth identity: %v; %s", err, howToAuthenticate)
		}
		v, err := EncodePrincipal(p)
		if err != nil {
			return nil, http.StatusInternalServerError, codes.Internal, err.Error()
		}
		return metadata.Pairs(PrincipalMetadata, v), http.StatusOK, codes.OK, ""
	}
	return nil, http.StatusUnauthorized, codes.Unauthenticated, "authentication required: " + howToAuthenticate
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
		"description": "Every method is POST /berth.v1.ClusterService/<Method> with a JSON body. Authenticate with a client certificate of the cluster or Authorization: Bearer <token> (berth token create NAME); what each caller may call is decided by its role and namespaces.",
	}
	doc["schemes"] = []string{"https"}
	doc["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{"type": "apiKey", "name": "Authorization", "in": "header",
			"description": "Bearer <token>, with a token from `berth token create NAME`"},
	}
	doc["security"] = []any{map[string]any{"bearer": []string{}}}
	return json.MarshalIndent(doc, "", "  ")
}
