package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/api/version"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/httpapi"
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
func (s *Server) startHTTPAPI(tlsCfg *tls.Config, certPEM, keyPEM []byte, api *apiserver.Server) (*httpAPI, error) {
	clientTLS, err := identity.ClientTLS(certPEM, keyPEM, s.authority.CACertPEM(), "")
	if err != nil {
		return nil, err
	}
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
	mux.Handle("/", h)
	httpTLS := tlsCfg.Clone()
	httpTLS.NextProtos = []string{"h2", "http/1.1"}
	return &httpAPI{
		server:   &http.Server{Handler: mux, TLSConfig: httpTLS, ReadHeaderTimeout: 10 * time.Second},
		listener: ln,
		conn:     conn,
	}, nil
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
