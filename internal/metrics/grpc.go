package metrics

import (
	"context"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// GRPC is a gRPC server's metrics under the names Prometheus' gRPC
// dashboards and alerts expect (go-grpc-middleware's provider):
// grpc_server_started_total, grpc_server_handled_total (by code),
// grpc_server_msg_received_total, grpc_server_msg_sent_total and the
// grpc_server_handling_seconds histogram, each by grpc_type,
// grpc_service and grpc_method, with a constant role label ("server" or
// "node") that keeps a server's calls apart from its agent's in `berth
// dev`, where both share one registry. A stream's handling time is how
// long it stayed open: a session or a followed log lives as long as its
// client.
type GRPC struct {
	server *grpcprom.ServerMetrics
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
}

// NewGRPC returns unregistered gRPC server metrics of a role ("server"
// or "node"); register them with Collectors.
func NewGRPC(role string) *GRPC {
	labels := prometheus.Labels{"role": role}
	m := grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithConstLabels(labels)),
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramConstLabels(labels)),
	)
	return &GRPC{server: m, unary: m.UnaryServerInterceptor(), stream: m.StreamServerInterceptor()}
}

// Collectors are the metrics to register.
func (g *GRPC) Collectors() []prometheus.Collector {
	return []prometheus.Collector{g.server}
}

// Unary is the interceptor that measures unary calls. Chain it before
// authorization, so refused calls count too.
func (g *GRPC) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return g.unary(ctx, req, info, handler)
}

// Stream is the interceptor that measures streams.
func (g *GRPC) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return g.stream(srv, ss, info, handler)
}
