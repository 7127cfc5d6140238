package cli

import (
	"regexp"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// applyScript is what the server shows around an apply of shopCompose that
// updates web from version 1 to 2 and leaves worker alone, ending with
// last (web's state) and its tasks.
func applyScript(last *berthv1.Service, lastTasks []*berthv1.Task, events ...*berthv1.Event) []clusterState {
	worker := svcAt("worker", 1, 2, 20)
	web1 := svcAt("web", 1, 2, 10)
	web2 := withUpdate(svcAt("web", 2, 2, 11), berthv1.UpdateState_UPDATE_STATE_UPDATING, "")
	half := runningTasks(web2)
	half[1] = taskOf(web2, 2, 1, berthv1.TaskState_TASK_STATE_RUNNING)
	state := func(web *berthv1.Service, tasks []*berthv1.Task) clusterState {
		return clusterState{services: []*berthv1.Service{web, worker}, tasks: append(tasks, runningTasks(worker)...), events: events}
	}
	return []clusterState{
		state(web1, runningTasks(web1)), // read before the apply
		state(web1, runningTasks(web1)), // the apply does not show yet
		state(web2, half),
		state(last, lastTasks),
	}
}

var applyChanges = &berthv1.ApplyResponse{Changes: []*berthv1.ServiceChange{
	{Service: "web", Action: berthv1.ChangeAction_CHANGE_ACTION_UPDATE, Fields: []string{"image"}},
	{Service: "worker", Action: berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED},
}}

func TestApplyWaitConverges(t *testing.T) {
	done := withUpdate(svcAt("web", 2, 2, 12), berthv1.UpdateState_UPDATE_STATE_COMPLETED, "update to version 2 completed")
	for _, watch := range []bool{true, false} {
		name := "watch"
		if !watch {
			name = "poll"
		}
		t.Run(name, func(t *testing.T) {
			f := newOpsCluster(watch, applyScript(done, runningTasks(done))...)
			f.applyResp = applyChanges
			cfg := serve(t, f)
			r := mustRun(t, cfg, "apply", "-f", writeCompose(t, shopCompose), "--wait")
			want := "service web updated (image)\nservice worker unchanged\n" +
				"shop/worker: converged, 2/2 tasks updated\n" +
				"shop/web: updating, 1/2 tasks updated: web.2 runs version 1, not yet 2\n" +
				"shop/web: converged, completed, 2/2 tasks updated\n"
			if !strings.HasPrefix(r.stdout, want) || !regexp.MustCompile(`\nshop converged in [0-9.]+m?s\n$`).MatchString(r.stdout) {
				t.Errorf("stdout = %q, want %q then the time it took", r.stdout, want)
			}
			if len(f.applyReqs) != 1 {
				t.Errorf("Apply called %d times", len(f.applyReqs))
			}
		})
	}
}

func TestApplyWaitFails(t *testing.T) {
	paused := withUpdate(svcAt("web", 2, 2, 12), berthv1.UpdateState_UPDATE_STATE_PAUSED, "update paused: task web.2 failed: exit code 1")
	back := withUpdate(svcAt("web", 3, 2, 13), berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED, "rollback completed: rollback to version 1: update to version 2 failed: exit code 1")
	back.ChangeCause = "rollback to version 1: update to version 2 failed: exit code 1"
	updating := withUpdate(svcAt("web", 2, 2, 12), berthv1.UpdateState_UPDATE_STATE_UPDATING, "")
	gaveUp := runningTasks(updating)
	gaveUp[1].Status = &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 2, Timestamp: at(30)}
	gaveUpEvent := &berthv1.Event{Kind: "task", ObjectId: gaveUp[1].Meta.Id, Action: "restart-given-up", Attributes: map[string]string{"app": "shop", "service": "web"}}

	tests := []struct {
		name   string
		script []clusterState
		want   string
	}{
		{"paused", applyScript(paused, runningTasks(paused)),
			"berth: shop did not converge: shop/web: update paused: task web.2 failed: exit code 1; see `berth rollout status` and `berth events shop`\n"},
		{"rolled back", applyScript(back, runningTasks(back)),
			"berth: shop did not converge: shop/web: the update was rolled back: rollback completed: rollback to version 1: update to version 2 failed: exit code 1;"},
		{"restart given up", applyScript(updating, gaveUp, gaveUpEvent),
			"berth: shop did not converge: shop/web: web.2 failed (exit code 2); its restart attempts are used up (restart-given-up);"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newOpsCluster(true, tt.script...)
			f.applyResp = applyChanges
			cfg := serve(t, f)
			r := run(t, cfg, nil, "apply", "-f", writeCompose(t, shopCompose), "--wait")
			if r.code == 0 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want it to contain %q", r.code, r.stderr, tt.want)
			}
			if strings.Contains(r.stdout, "shop converged") {
				t.Errorf("stdout says the app converged:\n%s", r.stdout)
			}
		})
	}
}

func TestApplyWaitTimeout(t *testing.T) {
	web := withUpdate(svcAt("web", 2, 2, 12), berthv1.UpdateState_UPDATE_STATE_UPDATING, "")
	tasks := runningTasks(web)
	tasks[1].Status = &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_PENDING, Message: "no suitable node (insufficient memory on 2 nodes)"}
	f := newOpsCluster(true, applyScript(web, tasks)...)
	f.applyResp = applyChanges
	cfg := serve(t, f)
	r := run(t, cfg, nil, "apply", "-f", writeCompose(t, shopCompose), "--wait", "--timeout", "500ms")
	want := "berth: timed out after 500ms: 1 of 2 services have not converged (shop/web: updating, 1/2 tasks updated: " +
		"web.2 pending: no suitable node (insufficient memory on 2 nodes)); the rollout goes on"
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr %q; want it to contain %q", r.code, r.stderr, want)
	}
}

func TestApplyWaitFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--wait", "--dry-run"}, "--wait and --dry-run do not go together"},
		{[]string{"--timeout", "1m"}, "--timeout bounds --wait: add --wait"},
	}
	for _, tt := range tests {
		f := newOpsCluster(true)
		f.applyResp = applyChanges
		cfg := serve(t, f)
		r := run(t, cfg, nil, append([]string{"apply", "-f", writeCompose(t, shopCompose)}, tt.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) || len(f.applyReqs) != 0 {
			t.Errorf("%v: exit %d, stderr %q, %d applies", tt.args, r.code, r.stderr, len(f.applyReqs))
		}
	}
}
