package controlplane

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// defaultCallTimeout bounds a unary call whose client set no deadline, so
// that a client that never gives up cannot hold a handler (and what it
// holds: etcd requests, calls to nodes) for ever. Streams (watch, logs,
// exec, builds, agent sessions) end with their clients instead.
const defaultCallTimeout = 2 * time.Minute

// longCallTimeouts are the unary calls that may legitimately take longer:
// those that call many nodes one after another (each call to a node has
// its own, shorter bound).
var longCallTimeouts = map[string]time.Duration{
	"/berth.v1.ClusterService/DeleteApp":    10 * time.Minute,
	"/berth.v1.ClusterService/RemoveVolume": 10 * time.Minute,
}

// callTimeout is the bound of a unary call without a client deadline.
func callTimeout(method string) time.Duration {
	if d, ok := longCallTimeouts[method]; ok {
		return d
	}
	return defaultCallTimeout
}

// deadlineUnary gives a unary call without a deadline the server's bound;
// a client's own deadline, shorter or longer, is kept.
func deadlineUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout(info.FullMethod))
		defer cancel()
	}
	return handler(ctx, req)
}
