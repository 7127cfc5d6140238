package controlplane

import (
	"context"
	"slices"
	"testing"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/httpapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

var berthFiles = []protoreflect.FileDescriptor{
	berthv1.File_berth_v1_cluster_proto, berthv1.File_berth_v1_agent_proto, berthv1.File_berth_v1_node_proto,
}

// newInput makes an empty request of m.
func newInput(m protoreflect.MethodDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		panic(err)
	}
	return mt.New().Interface()
}

// errUnimplemented is what every method of registerUnimplemented answers
// once authorisation lets the call through.
var errUnimplemented = status.Error(codes.Unimplemented, "reached the handler")

// registerUnimplemented serves every method of Berth's services, read
// from the descriptors, with a handler that reads the request (the first
// message, for streams, as the real handlers do) and answers
// Unimplemented: whatever refuses a call before that is authorisation.
func registerUnimplemented(s *grpc.Server) {
	for _, f := range berthFiles {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			desc := grpc.ServiceDesc{ServiceName: string(svc.FullName()), HandlerType: (*any)(nil)}
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				full := "/" + string(svc.FullName()) + "/" + string(m.Name())
				if !m.IsStreamingClient() && !m.IsStreamingServer() {
					desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: string(m.Name()),
						Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
							req := newInput(m)
							if err := dec(req); err != nil {
								return nil, err
							}
							h := func(context.Context, any) (any, error) { return nil, errUnimplemented }
							return ic(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, h)
						}})
					continue
				}
				desc.Streams = append(desc.Streams, grpc.StreamDesc{StreamName: string(m.Name()),
					ServerStreams: m.IsStreamingServer(), ClientStreams: m.IsStreamingClient(),
					Handler: func(_ any, stream grpc.ServerStream) error {
						if err := stream.RecvMsg(newInput(m)); err != nil {
							return err
						}
						return errUnimplemented
					}})
			}
			s.RegisterService(&desc, struct{}{})
		}
	}
}

// call calls method m with req over conn and returns the error.
func call(ctx context.Context, conn *grpc.ClientConn, full string, m protoreflect.MethodDescriptor, req proto.Message) error {
	if !m.IsStreamingClient() && !m.IsStreamingServer() {
		return conn.Invoke(ctx, full, req, new(berthv1.VersionResponse))
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, full)
	if err != nil {
		return err
	}
	s.SendMsg(req) // a refused stream reports why on RecvMsg
	s.CloseSend()
	var out any = new(berthv1.VersionResponse)
	return s.RecvMsg(out)
}

// expected says, from the table, whether a caller of role in namespaces
// may call rule's method in ns: the rule read the way the README states
// it, independently of access.Check.
func expected(rule access.Rule, role identity.Role, namespaces []string, ns string) bool {
	if rule.Open || slices.Contains(rule.Roles, role) {
		return true
	}
	if rule.Level == access.None || access.LevelOf(role) < rule.Level {
		return false
	}
	return rule.Scope == access.Cluster || len(namespaces) == 0 || slices.Contains(namespaces, ns)
}

// TestEveryRoleAgainstEveryMethod calls every method of every service as
// every kind of caller, through the real interceptors over TLS: a call
// the table allows reaches the handler, one it forbids is
// PermissionDenied (Unauthenticated for a caller with no credential).
func TestEveryRoleAgainstEveryMethod(t *testing.T) {
	ctx := context.Background()
	c := newRBACCluster(t)
	admin := c.admin(t)
	addr := c.serve(t, registerUnimplemented)

	type caller struct {
		name       string
		role       identity.Role // "" for no credential
		namespaces []string
		conn       *grpc.ClientConn
		md         metadata.MD
	}
	certCaller := func(name string, role identity.Role, cert, key []byte, namespaces ...string) caller {
		return caller{name: name, role: role, namespaces: namespaces, conn: c.dial(t, addr, cert, key, "")}
	}
	userCaller := func(name string, role identity.Role, namespaces ...string) caller {
		cert, key := c.user(t, admin, name, string(role), namespaces...)
		return certCaller("user "+name, role, cert, key, namespaces...)
	}
	tokenCaller := func(name string, role identity.Role, namespaces ...string) caller {
		_, secret := c.token(t, admin, name, string(role), namespaces...)
		return caller{name: "token " + name, role: role, namespaces: namespaces, conn: c.dial(t, addr, nil, nil, secret)}
	}
	adminCert, adminKey, err := c.authority.IssueAdmin()
	if err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey, err := c.authority.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	nodeKey, nodeCSR, err := identity.NewKeyAndCSR("n1")
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, err := c.authority.SignNode(nodeCSR, "n1")
	if err != nil {
		t.Fatal(err)
	}
	forwarded, err := httpapi.EncodePrincipal(access.Principal{Kind: "user", Name: "web-deployer", Role: identity.RoleDeployer, Namespaces: []string{"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	gateway := certCaller("gateway for a deployer of team-a", identity.RoleDeployer, serverCert, serverKey, "team-a")
	gateway.md = metadata.Pairs(httpapi.PrincipalMetadata, forwarded, httpapi.ForwardedForMetadata, "192.0.2.7:40000")
	callers := []caller{
		certCaller("admin certificate", identity.RoleAdmin, adminCert, adminKey),
		userCaller("vera", identity.RoleViewer, "team-a"),
		userCaller("dora", identity.RoleDeployer, "team-a"),
		userCaller("dan", identity.RoleDeployer),
		userCaller("ada", identity.RoleAdmin),
		certCaller("node", identity.RoleNode, nodeCert, nodeKey),
		certCaller("server", identity.RoleServer, serverCert, serverKey),
		tokenCaller("viewer-a", identity.RoleViewer, "team-a"),
		tokenCaller("deployer-a", identity.RoleDeployer, "team-a", "team-c"),
		tokenCaller("deployer", identity.RoleDeployer),
		tokenCaller("admin", identity.RoleAdmin),
		gateway,
		{name: "no credential", conn: c.dial(t, addr, nil, nil, "")},
	}

	for _, f := range berthFiles {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				full := "/" + string(svc.FullName()) + "/" + string(m.Name())
				rule := access.Methods[full]
				type variant struct {
					ns  string
					all bool
				}
				variants := []variant{{ns: "default"}}
				fields := m.Input().Fields()
				if fd := fields.ByName("namespace"); fd != nil && fd.Kind() == protoreflect.StringKind {
					variants = append(variants, variant{ns: "team-a"}, variant{ns: "team-b"})
				}
				if fields.ByName("all_namespaces") != nil {
					variants = append(variants, variant{all: true})
				}
				for _, cl := range callers {
					for _, v := range variants {
						req := newInput(m)
						if v.ns != "default" {
							req.ProtoReflect().Set(fields.ByName("namespace"), protoreflect.ValueOfString(v.ns))
						}
						if v.all {
							req.ProtoReflect().Set(fields.ByName("all_namespaces"), protoreflect.ValueOfBool(true))
						}
						want := cl.role != "" && expected(rule, cl.role, cl.namespaces, v.ns)
						if v.all && cl.role != "" {
							want = expected(rule, cl.role, nil, "")
						}
						if rule.Open {
							want = true
						}
						callCtx := ctx
						if cl.md != nil {
							callCtx = metadata.NewOutgoingContext(ctx, cl.md)
						}
						err := call(callCtx, cl.conn, full, m, req)
						code := status.Code(err)
						switch {
						case want && (code == codes.PermissionDenied || code == codes.Unauthenticated):
							t.Errorf("%s, %s in %q (all %v): refused (%v), but the table allows it", cl.name, full, v.ns, v.all, err)
						case !want && cl.role == "" && code != codes.Unauthenticated:
							t.Errorf("%s, %s: got %v, want Unauthenticated", cl.name, full, err)
						case !want && cl.role != "" && code != codes.PermissionDenied:
							t.Errorf("%s, %s in %q (all %v): got %v, want PermissionDenied", cl.name, full, v.ns, v.all, err)
						}
					}
				}
			}
		}
	}
}

// TestForgedForwardedPrincipal checks that only a server may speak for
// an HTTP caller.
func TestForgedForwardedPrincipal(t *testing.T) {
	c := newRBACCluster(t)
	cert, key := c.user(t, c.admin(t), "mallory", "viewer", "team-a")
	forged, err := httpapi.EncodePrincipal(access.Principal{Kind: "user", Name: "admin", Role: identity.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	cl := berthv1.NewClusterServiceClient(c.dial(t, c.addr, cert, key, ""))
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs(httpapi.PrincipalMetadata, forged))
	_, err = cl.ListUsers(ctx, &berthv1.ListUsersRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a viewer speaking for an admin: got %v, want PermissionDenied", err)
	}
}

// TestForgedForwardedAddress checks that only a server may name the
// address of an HTTP caller, which the audit log records as the peer.
func TestForgedForwardedAddress(t *testing.T) {
	c := newRBACCluster(t)
	cert, key := c.user(t, c.admin(t), "mallory", "viewer", "team-a")
	cl := berthv1.NewClusterServiceClient(c.dial(t, c.addr, cert, key, ""))
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs(httpapi.ForwardedForMetadata, "192.0.2.7:40000"))
	if _, err := cl.WhoAmI(ctx, &berthv1.WhoAmIRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a viewer naming another address: got %v, want PermissionDenied", err)
	}
}

func TestTokenPrincipalOfOldTokens(t *testing.T) {
	p := apiserver.TokenPrincipal(&berthv1.APIToken{Id: "x", Name: "old"})
	if p.Role != identity.RoleAdmin || !p.AllNamespaces() || p.String() != "token/old" {
		t.Errorf("a token made before roles is %+v, want an admin of every namespace", p)
	}
}
