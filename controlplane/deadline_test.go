package controlplane

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
)

func TestDeadlineUnary(t *testing.T) {
	tests := []struct {
		name, method string
		client       time.Duration // 0: the client set no deadline
		wantAtLeast  time.Duration
		wantAtMost   time.Duration
	}{
		{"no client deadline", "/berth.v1.ClusterService/Apply", 0, time.Minute, defaultCallTimeout},
		{"a long call", "/berth.v1.ClusterService/DeleteApp", 0, 5 * time.Minute, 10 * time.Minute},
		{"the client's shorter deadline kept", "/berth.v1.ClusterService/Apply", time.Second, 0, 0},
		{"the client's longer deadline kept", "/berth.v1.ClusterService/Apply", time.Hour, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.client > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.client)
				defer cancel()
			}
			start := time.Now()
			var deadline time.Time
			var ok bool
			_, err := deadlineUnary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: tt.method}, func(ctx context.Context, _ any) (any, error) {
				deadline, ok = ctx.Deadline()
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want, set := ctx.Deadline(); set {
				if !ok || !deadline.Equal(want) {
					t.Fatalf("handler's deadline %v (set %v); want the client's, %v", deadline, ok, want)
				}
				return
			}
			// The upper bound has slack for the time the call took.
			if left := deadline.Sub(start); !ok || left < tt.wantAtLeast || left > tt.wantAtMost+time.Minute {
				t.Fatalf("handler's deadline %v away (set %v); want between %v and %v", left, ok, tt.wantAtLeast, tt.wantAtMost)
			}
		})
	}
}
