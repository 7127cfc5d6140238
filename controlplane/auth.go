package controlplane

import (
	"context"
	"strings"

	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// authorize decides who may call what: Join is open (the token is the
// credential), agent sessions need a node certificate, and the cluster API
// needs an admin (or server) certificate.
func authorize(ctx context.Context, method string) error {
	if method == "/berth.v1.AgentService/Join" {
		return nil
	}
	who, ok := identity.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no client certificate: use the config file `berth server` wrote (--config or BERTH_CONFIG)")
	}
	switch {
	case strings.HasPrefix(method, "/berth.v1.AgentService/"):
		if who.Role == identity.RoleNode {
			return nil
		}
	case strings.HasPrefix(method, "/berth.v1.ClusterService/"):
		if admitsClusterAPI(who) {
			return nil
		}
	}
	return status.Errorf(codes.PermissionDenied, "%s may not call %s", who, method)
}

// admitsClusterAPI reports whether a certificate's holder may call the
// cluster API, over gRPC or HTTP/JSON.
func admitsClusterAPI(who identity.Identity) bool {
	return who.Role == identity.RoleAdmin || who.Role == identity.RoleServer
}

func authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
