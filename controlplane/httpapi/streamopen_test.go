package httpapi

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// quietWatch is a Watch that has started (its headers came) but sends
// nothing until its context ends, or fails with err at once.
type quietWatch struct {
	grpc.ClientStream
	ctx context.Context
	err error
}

func (w *quietWatch) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (w *quietWatch) Trailer() metadata.MD         { return nil }
func (w *quietWatch) Recv() (*berthv1.WatchEvent, error) {
	if w.err != nil {
		return nil, w.err
	}
	<-w.ctx.Done()
	return nil, w.ctx.Err()
}

// watchCluster answers Watch with a quietWatch.
type watchCluster struct {
	berthv1.ClusterServiceClient
	err error
}

func (c *watchCluster) Watch(ctx context.Context, _ *berthv1.WatchRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[berthv1.WatchEvent], error) {
	return &quietWatch{ctx: ctx, err: c.err}, nil
}

// TestQuietStreamOpens checks that a server stream's headers reach the
// client before any message: the dashboard tells an open stream by them.
func TestQuietStreamOpens(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		wantLine string
	}{
		{"quiet", nil, ""},
		{"fails before its first message", status.Error(codes.ResourceExhausted, "the watch fell too far behind"), `"error"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := New(Config{Client: &watchCluster{err: c.err}, Tokens: fakeTokens{}, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/berth.v1.ClusterService/Watch", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer good")
			// Do returns once the headers are in: before the fix it
			// waited for a first message that never came.
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("POST Watch: %v (the stream's headers did not come)", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("POST Watch = %d %q, want 200 with JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if c.wantLine == "" {
				return
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || !strings.Contains(line, c.wantLine) || !strings.Contains(line, "too far behind") {
				t.Fatalf("first line %q (%v), want the stream's error", line, err)
			}
		})
	}
}
