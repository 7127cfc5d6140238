package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/version"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/httpapi"
	"github.com/berthproject/berth/controlplane/trigger"
	"github.com/berthproject/berth/controlplane/web"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// httpAPI is the HTTP/JSON API's listener and the gRPC connection its
// gateway forwards calls over.
type httpAPI struct {
	server   *http.Server
	listener net.Listener
	conn     *grpc.ClientConn
}

// startHTTPAPI listens on cfg.HTTPListen with the server's TLS
// configuration and serves the HTTP/JSON API there, and the web dashboard
// at /ui/. The gateway calls this
// server's own gRPC listener over loopback with the server certificate, so
// HTTP calls take the CLI's path (interceptors, streams) once httpapi has
// authenticated them. It forwards each HTTP caller's bearer token, or its
// client certificate's principal, as call metadata: authenticate believes
// a forwarded principal only from a server certificate, and the access
// table then decides for the HTTP caller as for a gRPC one.
func (s *Server) startHTTPAPI(api *apiserver.Server) (*httpAPI, error) {
	clientTLS := s.certs.creds.ClientTLS("")
	conn, err := grpc.NewClient(s.listener.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
	if err != nil {
		return nil, fmt.Errorf("HTTP API: connecting its gateway to %s: %w", s.listener.Addr(), err)
	}
	h, err := httpapi.New(httpapi.Config{
		Client: berthv1.NewClusterServiceClient(conn), Tokens: api,
		Version: version.String(), Log: s.log.With("component", "http"),
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPListen)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("HTTP API: listening on %s: %w (change --http-listen)", s.cfg.HTTPListen, err)
	}
	// The dashboard shares the listener: its page calls the API above
	// from the same origin.
	mux := http.NewServeMux()
	dashboard := web.New(web.Config{Tokens: api, Log: s.log.With("component", "web")})
	mux.Handle(web.Prefix, dashboard)
	mux.Handle(strings.TrimSuffix(web.Prefix, "/"), dashboard)
	// Webhooks carry no certificate or token: their HMAC signature is
	// their authorisation (trigger.Hooks), not the access table.
	mux.Handle(trigger.HooksPrefix, s.hooks)
	mux.Handle("/", h)
	httpTLS := s.certs.creds.ServerTLS([]string{"h2", "http/1.1"}, s.certs.isRevoked)
	return &httpAPI{
		// No ReadTimeout or WriteTimeout: both would cut the streams
		// (watch, logs -f) short; the body alone has a deadline.
		server: &http.Server{
			Handler: withBodyDeadline(mux, bodyReadTimeout), TLSConfig: httpTLS,
			ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		},
		listener: ln,
		conn:     conn,
	}, nil
}

// bodyReadTimeout bounds how long a client may take to send a request's
// body (a Compose file, an Apply of JSON): a client that trickles it in
// would otherwise hold a handler and its memory for ever.
const bodyReadTimeout = time.Minute

// withBodyDeadline gives reading a request's body a deadline d away, and
// lifts it once the body is read, so that a response streamed for hours
// (watch, logs -f) is not cut. http.Server's ReadTimeout cannot do this:
// its deadline also ends the connection's reads after the body, which
// cancels a streaming handler's context.
func withBodyDeadline(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { rc.SetReadDeadline(time.Time{}) }}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body has been read to
// its end or closed.
type deadlineBody struct {
	io.ReadCloser
	lift   func()
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done()
	}
	return n, err
}

func (b *deadlineBody) Close() error {
	b.done()
	return b.ReadCloser.Close()
}

func (b *deadlineBody) done() {
	if !b.lifted {
		b.lifted = true
		b.lift()
	}
}

// serve serves until stop.
func (h *httpAPI) serve() error {
	if err := h.server.ServeTLS(h.listener, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("HTTP API: %w", err)
	}
	return nil
}

// stop ends the HTTP API's requests, streams included, and its gateway
// connection: before the gRPC server stops, whose graceful stop would
// otherwise wait for the streams the gateway holds open.
func (h *httpAPI) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.server.Shutdown(ctx); err != nil {
		h.server.Close()
	}
	// Closed here too for a server that stopped before it served.
	h.listener.Close()
	h.conn.Close()
}
