package cli

import (
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// withRebalance sets svc's rebalance status.
func withRebalance(svc *berthv1.Service, state berthv1.RebalanceState, requested int, moved uint32) *berthv1.Service {
	svc.Rebalance = &berthv1.RebalanceStatus{State: state, RequestedAt: at(requested), Moved: moved}
	return svc
}

func TestRebalance(t *testing.T) {
	agent := svcAt("agent", 1, 0, 1)
	agent.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	f := newOpsCluster(false, clusterState{services: []*berthv1.Service{svcAt("web", 1, 3, 1), svcAt("db", 1, 1, 1), agent}})
	cfg := serve(t, f)
	r := mustRun(t, cfg, "rebalance", "-n", "team-a")
	if r.stdout != "shop/web: rebalance requested\nshop/db: rebalance requested\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	mustRun(t, cfg, "rebalance", "shop/web")
	if got := f.rebalanceReqs; got[0].Namespace != "team-a" || got[0].App != "" || got[1].App != "shop" || got[1].Service != "web" {
		t.Errorf("requests = %v", got)
	}
	r = mustRun(t, cfg, "rebalance", "other")
	if r.stdout != "nothing to rebalance: no replicated service in namespace \"default\"\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if r := run(t, cfg, nil, "rebalance", "shop/web/x"); r.code == 0 || !strings.Contains(r.stderr, "is not APP or APP/SERVICE") {
		t.Errorf("bad ref: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run(t, cfg, nil, "rebalance", "--timeout", "1m"); r.code == 0 || !strings.Contains(r.stderr, "--timeout bounds --wait") {
		t.Errorf("--timeout alone: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRebalanceWait(t *testing.T) {
	const (
		requested = berthv1.RebalanceState_REBALANCE_STATE_REQUESTED
		moving    = berthv1.RebalanceState_REBALANCE_STATE_MOVING
		completed = berthv1.RebalanceState_REBALANCE_STATE_COMPLETED
	)
	state := func(web, db *berthv1.Service) clusterState {
		return clusterState{services: []*berthv1.Service{web, db}}
	}
	last := withRebalance(svcAt("web", 1, 3, 1), completed, 9, 2)
	last.Rebalance.Message = "moved 2 tasks; the service's tasks are spread as evenly as the nodes allow"
	f := newOpsCluster(true,
		// Before: web finished an earlier rebalance; that is not this one.
		state(withRebalance(svcAt("web", 1, 3, 1), completed, 5, 1), svcAt("db", 1, 2, 1)),
		state(withRebalance(svcAt("web", 1, 3, 1), completed, 5, 1), withRebalance(svcAt("db", 1, 2, 1), requested, 9, 0)),
		state(withRebalance(svcAt("web", 1, 3, 1), moving, 9, 1), withRebalance(svcAt("db", 1, 2, 1), completed, 9, 0)),
		state(last, withRebalance(svcAt("db", 1, 2, 1), completed, 9, 0)),
	)
	cfg := serve(t, f)
	r := mustRun(t, cfg, "rebalance", "shop", "--wait")
	want := "shop/db: rebalanced, 0 tasks moved\n" +
		"shop/web: moving tasks (1 moved so far)\n" +
		"shop/web: rebalanced, 2 tasks moved (the service's tasks are spread as evenly as the nodes allow)\n" +
		"rebalanced 2 services: 2 tasks moved\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
}

func TestRebalanceWaitTimeout(t *testing.T) {
	web := withRebalance(svcAt("web", 1, 3, 1), berthv1.RebalanceState_REBALANCE_STATE_REQUESTED, 9, 0)
	cfg := serve(t, newOpsCluster(true, clusterState{services: []*berthv1.Service{web}}))
	r := run(t, cfg, nil, "rebalance", "--wait", "--timeout", "300ms")
	if r.code == 0 || !strings.Contains(r.stderr, "berth: timed out after 300ms: the rebalance of shop/web (requested) has not completed") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}
