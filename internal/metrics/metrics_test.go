package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/metrics/metricstest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCountsReportsEveryStateAndZeros(t *testing.T) {
	c := NewCounts("berth_things", "Things by state.", "state", []string{"a", "b"},
		func() map[string]int { return map[string]int{"a": 2, "c": 1} })
	got := metricstest.Values(t, c)
	want := map[string]float64{`berth_things{state="a"}`: 2, `berth_things{state="b"}`: 0, `berth_things{state="c"}`: 1}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if n, ok := got[k]; !ok || n != v {
			t.Errorf("%s = %v (reported: %v), want %v", k, n, ok, v)
		}
	}
}

// serverStream is the little of a grpc.ServerStream the metrics read.
type serverStream struct{ grpc.ServerStream }

func (serverStream) Context() context.Context { return context.Background() }

func TestGRPCCountsCallsByMethodAndCode(t *testing.T) {
	g := NewGRPC("server")
	unary := func(err error) func(context.Context, any) (any, error) {
		return func(context.Context, any) (any, error) { return nil, err }
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/berth.v1.ClusterService/Apply"}
	calls := []error{nil, nil, status.Error(codes.PermissionDenied, "no")}
	for _, err := range calls {
		if _, got := g.Unary(context.Background(), nil, info, unary(err)); !errors.Is(got, err) {
			t.Fatalf("Unary returned %v, want %v", got, err)
		}
	}
	sinfo := &grpc.StreamServerInfo{FullMethod: "/berth.v1.AgentService/Session", IsClientStream: true, IsServerStream: true}
	if err := g.Stream(nil, serverStream{}, sinfo, func(any, grpc.ServerStream) error { return status.Error(codes.Canceled, "gone") }); status.Code(err) != codes.Canceled {
		t.Fatalf("Stream returned %v", err)
	}

	got := metricstest.Values(t, g.Collectors()...)
	const apply = `grpc_method="Apply",grpc_service="berth.v1.ClusterService",grpc_type="unary",role="server"`
	const session = `grpc_method="Session",grpc_service="berth.v1.AgentService",grpc_type="bidi_stream",role="server"`
	want := map[string]float64{
		`grpc_server_started_total{` + apply + `}`:                              3,
		`grpc_server_handled_total{grpc_code="OK",` + apply + `}`:               2,
		`grpc_server_handled_total{grpc_code="PermissionDenied",` + apply + `}`: 1,
		`grpc_server_handled_total{grpc_code="Canceled",` + session + `}`:       1,
		`grpc_server_handling_seconds_count{` + apply + `}`:                     3,
		`grpc_server_handling_seconds_count{` + session + `}`:                   1,
	}
	for k, v := range want {
		if n, ok := got[k]; !ok || n != v {
			t.Errorf("%s = %v (reported: %v), want %v\nall: %v", k, n, ok, v, got)
		}
	}
}

// In `berth dev` the server's and the agent's gRPC metrics share a
// registry.
func TestGRPCOfServerAndNodeShareARegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := Register(reg, append(NewGRPC("server").Collectors(), NewGRPC("node").Collectors()...)...); err != nil {
		t.Fatalf("registering a server's and a node's gRPC metrics together: %v", err)
	}
}

func TestEndpointServesTheRegistry(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_test_total", Help: "A test counter."})
	if err := Register(reg, c); err != nil {
		t.Fatal(err)
	}
	c.Add(3)
	if err := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_test_total", Help: "Again."})); err == nil {
		t.Fatal("registering a name twice succeeded")
	}

	e, err := Listen("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve() }()
	t.Cleanup(func() {
		e.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	resp, err := http.Get("http://" + e.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	for _, want := range []string{"berth_test_total 3\n", "go_goroutines ", "process_open_fds "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q:\n%s", want, body)
		}
	}
}

func TestEndpointClosesWithoutServing(t *testing.T) {
	e, err := Listen("127.0.0.1:0", prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := Listen(e.Addr(), prometheus.NewRegistry(), nil); err != nil {
		t.Fatalf("the address is still taken after Close: %v", err)
	}
}

func TestListenOnATakenAddressSaysHowToFix(t *testing.T) {
	e, err := Listen("127.0.0.1:0", prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = Listen(e.Addr(), prometheus.NewRegistry(), nil)
	if err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Fatalf("err = %v, want one naming --metrics-addr", err)
	}
}

func TestCertExpiry(t *testing.T) {
	reg := prometheus.NewRegistry()
	end := time.Now().Add(time.Hour)
	if err := Register(reg, CertExpiry("server", "s1", func() time.Time { return end }), CertExpiry("node", "n1", func() time.Time { return end.Add(time.Hour) })); err != nil {
		t.Fatalf("Register: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	if len(families) != 1 || families[0].GetName() != "berth_cert_expiry_seconds" || len(families[0].GetMetric()) != 2 {
		t.Fatalf("gathered %v, want berth_cert_expiry_seconds for two holders", families)
	}
	for _, m := range families[0].GetMetric() {
		v := m.GetGauge().GetValue()
		if v <= 0 || v > 2*3600 {
			t.Errorf("expiry %v s, want within two hours", v)
		}
	}
}

func TestProfilesOnlyOnLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		ok   bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9484}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 9484}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9484}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9484}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 9484}, false},
	} {
		err := LoopbackOnly(tt.addr)
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "loopback --metrics-addr")) {
			t.Errorf("LoopbackOnly(%s) = %v; want allowed %v, or an error that says to use loopback", tt.addr, err, tt.ok)
		}
	}
	e, err := Listen("127.0.0.1:0", prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.ServeProfiles(); err != nil {
		t.Fatalf("ServeProfiles on loopback: %v", err)
	}
}
