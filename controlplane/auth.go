package controlplane

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/httpapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Every call passes two interceptors, with others (metrics, audit, rate
// limits) around and between them:
//
//   - authenticate resolves the caller to an access.Principal and puts it
//     in the context: a bearer token when one is sent (it decides alone),
//     else the verified client certificate, else, for open methods (Join),
//     an anonymous principal. Streams it lets through are registered so
//     that revoking their token or certificate ends them.
//   - authorize asks access.Check, the one table, whether that principal
//     may call the method in the namespace the request names (the first
//     message, for streams).

// tokenChecker resolves API tokens; apiserver.Server is one.
type tokenChecker interface {
	CheckAPIToken(ctx context.Context, bearer string) (*berthv1.APIToken, error)
}

// authenticator is the authenticate interceptor's state.
type authenticator struct {
	tokens  tokenChecker
	streams *openStreams
}

// howToAuthenticate ends every Unauthenticated message.
const howToAuthenticate = "use a config file with a client certificate (berth server writes one; berth user create makes one per person) via --config or BERTH_CONFIG, or an API token (berth token create) via --token or BERTH_TOKEN"

// caller is what authenticate learnt: the principal and when its
// credential stops being valid (zero: never).
type caller struct {
	access.Principal
	expires time.Time
}

// resolve finds who calls method over the connection of ctx.
func (a *authenticator) resolve(ctx context.Context, method string) (caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get("authorization"); len(vals) > 0 {
		return a.fromToken(ctx, vals[0])
	}
	cert, _ := identity.PeerCertificate(ctx)
	if cert != nil {
		p, err := access.FromCertificate(cert)
		if err != nil {
			return caller{}, status.Errorf(codes.Unauthenticated, "the client certificate names no Berth identity: %v; %s", err, howToAuthenticate)
		}
		if vals := md.Get(httpapi.PrincipalMetadata); len(vals) > 0 {
			// Only the server's own HTTP/JSON gateway speaks for another
			// caller; from anyone else the header is a forgery.
			if p.Role != identity.RoleServer {
				return caller{}, status.Errorf(codes.PermissionDenied, "%s sent %s, which only a server's HTTP/JSON gateway may send", p, httpapi.PrincipalMetadata)
			}
			fwd, err := httpapi.DecodePrincipal(vals[0])
			if err != nil {
				return caller{}, status.Errorf(codes.Unauthenticated, "the forwarded caller is not readable: %v", err)
			}
			return caller{Principal: fwd}, nil
		}
		return caller{Principal: p, expires: cert.NotAfter}, nil
	}
	if rule, ok := access.Methods[method]; ok && rule.Open {
		return caller{Principal: access.Principal{Kind: "anonymous", Name: peerAddr(ctx)}}, nil
	}
	return caller{}, status.Error(codes.Unauthenticated, "no credential was sent: "+howToAuthenticate)
}

// fromToken checks a bearer token from the authorization metadata.
func (a *authenticator) fromToken(ctx context.Context, auth string) (caller, error) {
	scheme, bearer, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return caller{}, status.Error(codes.Unauthenticated, `the authorization metadata is not "Bearer <token>"; `+howToAuthenticate)
	}
	tok, err := a.tokens.CheckAPIToken(ctx, strings.TrimSpace(bearer))
	switch {
	case errors.Is(err, apiserver.ErrAPITokenInvalid):
		return caller{}, status.Error(codes.Unauthenticated, err.Error())
	case err != nil:
		return caller{}, status.Errorf(codes.Unavailable, "the API token could not be checked: %v; try again", err)
	}
	c := caller{Principal: apiserver.TokenPrincipal(tok)}
	if exp := tok.GetExpiresAt(); exp != nil {
		c.expires = exp.AsTime()
	}
	return c, nil
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

// forwardedAddr is the address of an HTTP caller, as the gateway saw it.
type forwardedAddr string

func (a forwardedAddr) Network() string { return "tcp" }
func (a forwardedAddr) String() string  { return string(a) }

// withForwardedPeer makes the HTTP caller's address, which the server's
// gateway forwards, the call's peer (the audit log records it). Only a
// server's gateway may send it; from anyone else it is a forgery.
func withForwardedPeer(ctx context.Context) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(httpapi.ForwardedForMetadata)
	if len(vals) == 0 {
		return ctx, nil
	}
	cert, _ := identity.PeerCertificate(ctx)
	if who, err := identity.FromCertificate(cert); err != nil || who.Role != identity.RoleServer {
		return nil, status.Errorf(codes.PermissionDenied, "%s may be sent only by a server's HTTP/JSON gateway", httpapi.ForwardedForMetadata)
	}
	p, _ := peer.FromContext(ctx)
	fwd := &peer.Peer{Addr: forwardedAddr(vals[0])}
	if p != nil {
		fwd.AuthInfo, fwd.LocalAddr = p.AuthInfo, p.LocalAddr
	}
	return peer.NewContext(ctx, fwd), nil
}

// authenticateUnary is the unary authenticate interceptor.
func (a *authenticator) authenticateUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := withForwardedPeer(ctx)
	if err != nil {
		return nil, err
	}
	c, err := a.resolve(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(access.NewContext(ctx, c.Principal), req)
}

// authenticateStream is the stream authenticate interceptor. The stream's
// context ends when its credential is revoked or expires; the caller is
// then told why.
func (a *authenticator) authenticateStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	base, err := withForwardedPeer(ss.Context())
	if err != nil {
		return err
	}
	c, err := a.resolve(base, info.FullMethod)
	if err != nil {
		return err
	}
	ctx, done := a.streams.open(access.NewContext(base, c.Principal), c.Principal, c.expires)
	defer done()
	err = handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	if cause := context.Cause(ctx); errors.Is(cause, errCredentialEnded) {
		return status.Error(codes.Unauthenticated, cause.Error())
	}
	return err
}

// contextStream is a server stream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// principalOf is the caller authenticate found.
func principalOf(ctx context.Context) (access.Principal, error) {
	p, ok := access.FromContext(ctx)
	if !ok {
		// authenticate runs first: this is a wiring mistake.
		return p, status.Error(codes.Internal, "the call was not authenticated")
	}
	return p, nil
}

// requestNamespace is the namespace a request acts in ("default" when it
// names none) and whether it asks for every namespace the caller may see.
func requestNamespace(req any) (ns string, all bool) {
	if r, ok := req.(access.AllNamespacesRequest); ok && r.GetAllNamespaces() {
		return "", true
	}
	switch r := req.(type) {
	case access.NamespacedRequest:
		ns = r.GetNamespace()
	case *berthv1.ExecRequest:
		ns = r.GetStart().GetNamespace()
	}
	if ns == "" {
		ns = apiserver.DefaultNamespace
	}
	return ns, false
}

// check runs access.Check for a request; with all_namespaces the namespace
// check passes and the handler answers only the namespaces p may see.
func check(p access.Principal, method string, req any) error {
	ns, all := requestNamespace(req)
	if all {
		p.Namespaces = nil
	}
	if err := access.Check(p, method, ns); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

// authorizeUnary is the unary authorize interceptor.
func authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p, err := principalOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := check(p, info.FullMethod, req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// authorizeStream is the stream authorize interceptor: the role is
// checked when the stream opens, the namespace on its first message (the
// request of a server stream, Exec's start).
func authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	p, err := principalOf(ss.Context())
	if err != nil {
		return err
	}
	role := p
	role.Namespaces = nil
	if err := access.Check(role, info.FullMethod, ""); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return handler(srv, &firstMessageCheck{ServerStream: ss, principal: p, method: info.FullMethod})
}

// firstMessageCheck checks the namespace of a stream's first message.
type firstMessageCheck struct {
	grpc.ServerStream
	principal access.Principal
	method    string
	checked   bool
}

func (s *firstMessageCheck) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !s.checked {
		s.checked = true
		return check(s.principal, s.method, m)
	}
	return nil
}
