package cli

import (
	"context"
	"sync"

	"google.golang.org/grpc"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/version"
)

// serverVersionCheck refuses, before its first call, a command of a CLI
// more than one minor version from the server it talks to, naming both
// versions: the two may not understand each other's requests. It asks the
// server's version once per command run (nothing is cached across runs),
// and never for the Version call itself, so berth version always answers.
// A server that cannot be asked is left to the command's own call, which
// reports why.
type serverVersionCheck struct {
	once sync.Once
	err  error
}

func (v *serverVersionCheck) check(ctx context.Context, cc *grpc.ClientConn, method string) error {
	if method == berthv1.ClusterService_Version_FullMethodName {
		return nil
	}
	v.once.Do(func() {
		resp := &berthv1.VersionResponse{}
		if err := cc.Invoke(ctx, berthv1.ClusterService_Version_FullMethodName, &berthv1.VersionRequest{}, resp); err != nil {
			return
		}
		v.err = version.Skew(version.Side{Role: "CLI", Version: version.String()}, version.Side{Role: "server", Version: resp.GetVersion()})
	})
	return v.err
}

func (v *serverVersionCheck) unary() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if err := v.check(ctx, cc, method); err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func (v *serverVersionCheck) stream() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if err := v.check(ctx, cc, method); err != nil {
			return nil, err
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}
