package cli

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestScale(t *testing.T) {
	f := newOpsCluster(false)
	cfg := serve(t, f)
	r := mustRun(t, cfg, "scale", "shop/web=5", "shop/worker=0", "-n", "team-a")
	if r.stdout != "web scaled to 5\nworker scaled to 0\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if len(f.scaleReqs) != 2 {
		t.Fatalf("%d ScaleService calls, want 2", len(f.scaleReqs))
	}
	if got := f.scaleReqs[0]; got.Namespace != "team-a" || got.App != "shop" || got.Service != "web" || got.Replicas != 5 {
		t.Errorf("first request = %v", got)
	}
	if got := f.scaleReqs[1]; got.Service != "worker" || got.Replicas != 0 {
		t.Errorf("second request = %v", got)
	}
}

func TestScaleBadInput(t *testing.T) {
	tests := []struct {
		arg  string
		want string
	}{
		{"shop/web=abc", `"shop/web=abc": replicas "abc" is not a whole number of 0 or more: use APP/SERVICE=N, such as shop/web=3`},
		{"shop/web=-1", `replicas "-1" is not a whole number`},
		{"web=3", `"web=3" does not name a service as APP/SERVICE: use APP/SERVICE=N`},
		{"shop/web", `"shop/web" has no replica count: use APP/SERVICE=N`},
		{"shop/web/x=2", `does not name a service as APP/SERVICE`},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			f := newOpsCluster(false)
			cfg := serve(t, f)
			// A good argument first: nothing is scaled when any is bad.
			r := run(t, cfg, nil, "scale", "shop/api=2", tt.arg)
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want it to contain %q", r.code, r.stderr, tt.want)
			}
			if len(f.scaleReqs) != 0 {
				t.Errorf("ScaleService called %d times despite a bad argument", len(f.scaleReqs))
			}
		})
	}
}

func TestScaleGoesOnPastAServiceThatFails(t *testing.T) {
	f := newOpsCluster(false)
	f.scaleErrs = map[string]error{"shop/agent": status.Error(codes.FailedPrecondition, "service shop/agent is global: it cannot be scaled")}
	cfg := serve(t, f)
	r := run(t, cfg, nil, "scale", "shop/agent=3", "shop/web=2")
	if r.code == 0 {
		t.Fatalf("exit 0, want failure")
	}
	if r.stdout != "web scaled to 2\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	for _, want := range []string{"berth: scale shop/agent: service shop/agent is global", "berth: 1 of 2 services were not scaled"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	// Alone, the server's reason is the error.
	r = run(t, cfg, nil, "scale", "shop/agent=3")
	if r.code == 0 || !strings.Contains(r.stderr, "berth: scale shop/agent: service shop/agent is global") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
