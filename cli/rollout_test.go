package cli

import (
	"encoding/json"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestRolloutStatusOnce(t *testing.T) {
	updating := withUpdate(svcAt("web", 2, 3, 100), berthv1.UpdateState_UPDATE_STATE_UPDATING, "")
	updTasks := runningTasks(updating)
	updTasks[2] = taskOf(updating, 3, 1, berthv1.TaskState_TASK_STATE_RUNNING)
	paused := withUpdate(svcAt("web", 2, 3, 100), berthv1.UpdateState_UPDATE_STATE_PAUSED, "update paused: task web.3 failed: exit code 1")
	done := withUpdate(svcAt("web", 2, 3, 100), berthv1.UpdateState_UPDATE_STATE_COMPLETED, "update to version 2 completed")
	tests := []struct {
		name  string
		state clusterState
		code  int
		want  []string
	}{
		{"updating", clusterState{services: []*berthv1.Service{updating}, tasks: updTasks}, 0,
			[]string{"Service:", "shop/web", "Spec version:  2, apply", "Rollout:", "updating from version 1", "2/3 tasks updated",
				"Status:", "converging: web.3 runs version 1, not yet 2"}},
		{"paused", clusterState{services: []*berthv1.Service{paused}, tasks: runningTasks(paused)}, 1,
			[]string{"paused from version 1", "3/3 tasks updated", "Message:", "update paused: task web.3 failed: exit code 1", "Status:", "failed"}},
		{"completed", clusterState{services: []*berthv1.Service{done}, tasks: runningTasks(done)}, 0,
			[]string{"completed from version 1", "3/3 tasks updated", "update to version 2 completed", "converged"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := serve(t, newOpsCluster(false, tt.state))
			r := run(t, cfg, nil, "rollout", "status", "shop/web")
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, tt.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			if tt.code != 0 && !strings.Contains(r.stderr, "berth rollout undo shop/web") {
				t.Errorf("stderr = %q, want a hint to undo", r.stderr)
			}
		})
	}
}

// rolloutScript is a rollout of web from version 1 to 2 that ends with
// last.
func rolloutScript(last clusterState) []clusterState {
	v2 := withUpdate(svcAt("web", 2, 2, 101), berthv1.UpdateState_UPDATE_STATE_UPDATING, "")
	half := runningTasks(v2)
	half[1] = taskOf(v2, 2, 1, berthv1.TaskState_TASK_STATE_RUNNING)
	return []clusterState{
		{services: []*berthv1.Service{v2}, tasks: half},
		{services: []*berthv1.Service{v2}, tasks: half}, // no news: no line
		{services: []*berthv1.Service{v2}, tasks: runningTasks(v2)},
		last,
	}
}

func TestRolloutStatusWatch(t *testing.T) {
	done := withUpdate(svcAt("web", 2, 2, 102), berthv1.UpdateState_UPDATE_STATE_COMPLETED, "")
	paused := withUpdate(svcAt("web", 2, 2, 102), berthv1.UpdateState_UPDATE_STATE_PAUSED, "update paused: task web.2 failed: exit code 1")
	back := withUpdate(svcAt("web", 3, 2, 102), berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED, "rollback completed")
	back.ChangeCause = "rollback to version 1: update to version 2 failed: exit code 1"
	tests := []struct {
		name   string
		watch  bool
		last   clusterState
		code   int
		stdout string
		stderr string
	}{
		{"completes", true, clusterState{services: []*berthv1.Service{done}, tasks: runningTasks(done)}, 0,
			"shop/web: updating, 1/2 tasks updated: web.2 runs version 1, not yet 2\n" +
				"shop/web: updating, 2/2 tasks updated: the rollout still watches the new tasks\n" +
				"shop/web: converged, completed, 2/2 tasks updated\n", ""},
		{"completes, polling", false, clusterState{services: []*berthv1.Service{done}, tasks: runningTasks(done)}, 0,
			"", ""},
		{"pauses", true, clusterState{services: []*berthv1.Service{paused}, tasks: runningTasks(paused)}, 1,
			"", "berth: shop/web: update paused: task web.2 failed: exit code 1; fix the spec and apply again, or return to the previous one with `berth rollout undo shop/web`\n"},
		{"rolled back", true, clusterState{services: []*berthv1.Service{back}, tasks: runningTasks(back)}, 1,
			"", "berth: shop/web: the update was rolled back: rollback completed; fix the spec and apply again\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newOpsCluster(tt.watch, rolloutScript(tt.last)...)
			cfg := serve(t, f)
			r := run(t, cfg, nil, "rollout", "status", "shop/web", "-w")
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", r.code, tt.code, r.stdout, r.stderr)
			}
			if tt.stdout != "" && r.stdout != tt.stdout {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.stdout)
			}
			if r.stderr != tt.stderr {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.stderr)
			}
			if got := f.stepsRead(t); got != 3 {
				t.Errorf("read up to state %d, want the last (3)", got)
			}
		})
	}
}

func TestRolloutStatusTimeout(t *testing.T) {
	v2 := withUpdate(svcAt("web", 2, 1, 101), berthv1.UpdateState_UPDATE_STATE_UPDATING, "")
	cfg := serve(t, newOpsCluster(true, clusterState{services: []*berthv1.Service{v2}}))
	r := run(t, cfg, nil, "rollout", "status", "shop/web", "-w", "--timeout", "300ms")
	if r.code == 0 || !strings.Contains(r.stderr, "berth: shop/web has not converged after 300ms: updating, 0/1 tasks updated: web.1 has no task yet") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRolloutBadRefs(t *testing.T) {
	cfg := serve(t, newOpsCluster(false, clusterState{}))
	for _, args := range [][]string{
		{"rollout", "status", "shop"},
		{"rollout", "history", "shop"},
		{"rollout", "undo", "shop"},
	} {
		r := run(t, cfg, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, `"shop" names an app: name one of its services as shop/SERVICE`) {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	r := run(t, cfg, nil, "rollout", "status", "shop/gone")
	if r.code == 0 || !strings.Contains(r.stderr, `no service shop/gone in namespace "default"`) {
		t.Errorf("missing service: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, cfg, nil, "rollout", "pause", "shop/web")
	if r.code == 0 || !strings.Contains(r.stderr, `unknown command "pause"`) {
		t.Errorf("unknown subcommand: exit %d, stderr %q", r.code, r.stderr)
	}
}

func historyService() *berthv1.Service {
	svc := svcAt("web", 4, 3, 100)
	svc.ChangeCause = "rollback to version 2"
	svc.Spec.Image = "shop/web:2"
	svc.Revisions = []*berthv1.ServiceRevision{
		{SpecVersion: 1, Spec: &berthv1.ServiceSpec{Image: "shop/web:1", Replicas: 3}, CreatedAt: at(10), ChangeCause: "apply"},
		{SpecVersion: 2, Spec: &berthv1.ServiceSpec{Image: "shop/web:2", Replicas: 3, Env: []string{"A=1"}}, CreatedAt: at(20), ChangeCause: "apply"},
		{SpecVersion: 3, Spec: &berthv1.ServiceSpec{Image: "shop/web:3", Replicas: 3, Env: []string{"A=1"}}, CreatedAt: at(30), ChangeCause: "apply"},
	}
	return svc
}

func TestRolloutHistory(t *testing.T) {
	cfg := serve(t, newOpsCluster(false, clusterState{services: []*berthv1.Service{historyService()}}))
	r := mustRun(t, cfg, "rollout", "history", "shop/web")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header and 4 versions:\n%s", r.stdout)
	}
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "VERSION CREATED CAUSE IMAGE DIGEST SIGNATURE CHANGES" {
		t.Errorf("header = %q", lines[0])
	}
	wants := [][]string{
		{"1", "apply", "(first version)"},
		{"2", "apply", "image, env"},
		{"3", "apply", "image"},
		{"4 (current)", "rollback to version 2", "image, env, mode"},
	}
	for i, want := range wants {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d = %q, want it to contain %q", i+1, lines[i+1], w)
			}
		}
	}

	r = mustRun(t, cfg, "rollout", "history", "shop/web", "-o", "json")
	var rows []historyRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, r.stdout)
	}
	if len(rows) != 4 || !rows[3].Current || rows[3].Version != 4 || rows[0].Created != "2025-01-02T03:04:15Z" ||
		strings.Join(rows[1].Changes, ",") != "image,env" || rows[0].Changes == nil {
		t.Errorf("rows = %+v", rows)
	}
}

func TestRolloutUndo(t *testing.T) {
	f := newOpsCluster(false)
	cfg := serve(t, f)
	r := run(t, cfg, nil, "rollout", "undo", "shop/web")
	if r.code == 0 || !strings.Contains(r.stderr, "berth: roll back shop/web: service shop/web has no earlier version to roll back to") {
		t.Errorf("without revisions: exit %d, stderr %q", r.code, r.stderr)
	}
	f.rollbackResp = &berthv1.Service{App: "shop", Name: "web", SpecVersion: 5, ChangeCause: "rollback to version 3"}
	r = mustRun(t, cfg, "rollout", "undo", "shop/web", "--to-version", "3", "-n", "team-a")
	if r.stdout != "shop/web: rollback to version 3 started as spec version 5; follow it with `berth rollout status shop/web -w`\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if got := f.rollbackReqs[1]; got.Namespace != "team-a" || got.App != "shop" || got.Service != "web" || got.ToVersion != 3 {
		t.Errorf("request = %v", got)
	}
}

func TestRolloutRestart(t *testing.T) {
	f := newOpsCluster(false)
	cfg := serve(t, f)
	r := mustRun(t, cfg, "rollout", "restart", "shop/web")
	if r.stdout != "shop/web: restart started as spec version 7; follow it with `berth rollout status shop/web -w`\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if got := f.restartReqs[0]; got.App != "shop" || got.Service != "web" {
		t.Errorf("request = %v", got)
	}
	r = run(t, cfg, nil, "rollout", "restart", "shop/api")
	if r.code != 1 || !strings.Contains(r.stderr, "restart shop/api: service shop/api not found") {
		t.Errorf("unknown service: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run(t, cfg, nil, "rollout", "restart", "shop"); r.code == 0 || !strings.Contains(r.stderr, "shop/SERVICE") {
		t.Errorf("APP alone: exit %d, stderr %q; want a failure saying to name shop/SERVICE", r.code, r.stderr)
	}
}
