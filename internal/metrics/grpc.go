package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// GRPC counts a gRPC server's calls by method and status code, and times
// its unary calls. Streams are counted when they end but not timed: a
// session or a followed log lives as long as its client, so its length
// says nothing about the server's speed.
type GRPC struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewGRPC returns unregistered gRPC server metrics; register them with
// Collectors.
func NewGRPC() *GRPC {
	return &GRPC{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_grpc_requests_total",
			Help: "gRPC calls the server finished, by full method name and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_grpc_request_duration_seconds",
			Help:    "Time the server took to answer unary gRPC calls, by full method name.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method"}),
	}
}

// Collectors are the metrics to register.
func (g *GRPC) Collectors() []prometheus.Collector {
	return []prometheus.Collector{g.requests, g.duration}
}

// Unary is the interceptor that measures unary calls. Chain it before
// authorization, so refused calls count too.
func (g *GRPC) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	g.duration.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	g.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// Stream is the interceptor that counts streams by how they ended.
func (g *GRPC) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	g.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return err
}
