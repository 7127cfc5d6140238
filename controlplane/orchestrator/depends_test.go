package orchestrator

import (
	"context"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	condStarted   = berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED
	condHealthy   = berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY
	condCompleted = berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY
)

// depTask is a task of the dependency for judgeDependency's cases.
type depTask struct {
	slot    uint64
	version uint64
	state   berthv1.TaskState
	health  berthv1.Health
	exit    int32
	stop    bool // desired shutdown
	// restarts is how many restarts in a row led to the task.
	restarts uint32
	age      time.Duration
}

func (d depTask) task(now time.Time) *berthv1.Task {
	desired := berthv1.TaskState_TASK_STATE_RUNNING
	if d.stop {
		desired = berthv1.TaskState_TASK_STATE_SHUTDOWN
	}
	version := d.version
	if version == 0 {
		version = 1
	}
	return &berthv1.Task{
		Meta:         &berthv1.Meta{Id: store.NewID(), CreatedAt: timestamppb.New(now.Add(-d.age))},
		Slot:         d.slot,
		SpecVersion:  version,
		DesiredState: desired,
		Status:       &berthv1.TaskStatus{State: d.state, Health: d.health, ExitCode: d.exit},
		Restarts:     d.restarts,
	}
}

func TestJudgeDependency(t *testing.T) {
	const (
		pendingState  = berthv1.TaskState_TASK_STATE_PENDING
		runningState  = berthv1.TaskState_TASK_STATE_RUNNING
		completeState = berthv1.TaskState_TASK_STATE_COMPLETE
		failedState   = berthv1.TaskState_TASK_STATE_FAILED
		rejectedState = berthv1.TaskState_TASK_STATE_REJECTED
		healthyHealth = berthv1.Health_HEALTH_HEALTHY
	)
	tests := []struct {
		name     string
		cond     berthv1.DependencyCondition
		replicas uint64
		missing  bool // no such service
		// noRestart sets the restart policy to none; maxAttempts caps
		// the restarts.
		noRestart   bool
		maxAttempts uint64
		tasks       []depTask
		want        dependencyVerdict
	}{
		{name: "not deployed", cond: condStarted, replicas: 1, missing: true,
			want: dependencyVerdict{waiting: "db (not deployed)"}},
		{name: "started: no task yet", cond: condStarted, replicas: 1,
			want: dependencyVerdict{waiting: "db (started)"}},
		{name: "started: pending", cond: condStarted, replicas: 1,
			tasks: []depTask{{slot: 1, state: pendingState}},
			want:  dependencyVerdict{waiting: "db (started)"}},
		{name: "started: running", cond: condStarted, replicas: 1,
			tasks: []depTask{{slot: 1, state: runningState}},
			want:  dependencyVerdict{met: true}},
		{name: "started: a one-shot that completed", cond: condStarted, replicas: 1,
			tasks: []depTask{{slot: 1, state: completeState}},
			want:  dependencyVerdict{met: true}},
		{name: "started: one of two replicas", cond: condStarted, replicas: 2,
			tasks: []depTask{{slot: 1, state: runningState}, {slot: 2, state: pendingState}},
			want:  dependencyVerdict{waiting: "db (started)"}},
		{name: "started: both replicas", cond: condStarted, replicas: 2,
			tasks: []depTask{{slot: 1, state: runningState}, {slot: 2, state: runningState}},
			want:  dependencyVerdict{met: true}},
		{name: "started: only an old version runs", cond: condStarted, replicas: 1,
			tasks: []depTask{{slot: 1, version: 1, state: runningState, stop: true}, {slot: 1, version: 2, state: pendingState}},
			want:  dependencyVerdict{waiting: "db (started)"}},
		{name: "started: scaled to zero", cond: condStarted, replicas: 0,
			want: dependencyVerdict{met: true}},
		{name: "healthy: running, health starting", cond: condHealthy, replicas: 1,
			tasks: []depTask{{slot: 1, state: runningState, health: berthv1.Health_HEALTH_STARTING}},
			want:  dependencyVerdict{waiting: "db (healthy)"}},
		{name: "healthy: running without a health check", cond: condHealthy, replicas: 1,
			tasks: []depTask{{slot: 1, state: runningState}},
			want:  dependencyVerdict{waiting: "db (healthy)"}},
		{name: "healthy: running and healthy", cond: condHealthy, replicas: 1,
			tasks: []depTask{{slot: 1, state: runningState, health: healthyHealth}},
			want:  dependencyVerdict{met: true}},
		{name: "healthy: failed as unhealthy, replacement starting", cond: condHealthy, replicas: 1,
			tasks: []depTask{{slot: 1, state: failedState, exit: 137, age: time.Minute}, {slot: 1, state: runningState, health: berthv1.Health_HEALTH_STARTING}},
			want:  dependencyVerdict{waiting: "db (healthy)"}},
		{name: "completed: running", cond: condCompleted, replicas: 1,
			tasks: []depTask{{slot: 1, state: runningState}},
			want:  dependencyVerdict{waiting: "db (completed successfully)"}},
		{name: "completed: exit 0", cond: condCompleted, replicas: 1,
			tasks: []depTask{{slot: 1, state: completeState}},
			want:  dependencyVerdict{met: true}},
		{name: "completed: exit 0, then restarted by its policy", cond: condCompleted, replicas: 1,
			tasks: []depTask{{slot: 1, state: completeState, age: time.Minute}, {slot: 1, state: runningState}},
			want:  dependencyVerdict{met: true}},
		{name: "completed: failed, no retry", cond: condCompleted, replicas: 1, noRestart: true,
			tasks: []depTask{{slot: 1, state: failedState, exit: 1}},
			want:  dependencyVerdict{failed: "db failed (exit code 1)"}},
		{name: "completed: failed, retry under way", cond: condCompleted, replicas: 1,
			tasks: []depTask{{slot: 1, state: failedState, exit: 1, age: time.Minute}, {slot: 1, state: pendingState}},
			want:  dependencyVerdict{waiting: "db (completed successfully)"}},
		{name: "completed: failed, its restart is due", cond: condCompleted, replicas: 1,
			tasks: []depTask{{slot: 1, state: failedState, exit: 1}},
			want:  dependencyVerdict{waiting: "db (completed successfully)"}},
		{name: "completed: failed, the restart policy gave up", cond: condCompleted, replicas: 1, maxAttempts: 1,
			tasks: []depTask{{slot: 1, state: failedState, exit: 1, age: time.Minute}, {slot: 1, state: failedState, exit: 1, restarts: 1}},
			want:  dependencyVerdict{failed: "db failed (exit code 1)"}},
		{name: "started: failed for good", cond: condStarted, replicas: 1, noRestart: true,
			tasks: []depTask{{slot: 1, state: failedState, exit: 1}},
			want:  dependencyVerdict{failed: "db failed (exit code 1)"}},
		{name: "completed: failed after an earlier success", cond: condCompleted, replicas: 1, noRestart: true,
			tasks: []depTask{{slot: 1, state: completeState, age: time.Minute}, {slot: 1, state: failedState, exit: 2}},
			want:  dependencyVerdict{failed: "db failed (exit code 2)"}},
		{name: "completed: rejected", cond: condCompleted, replicas: 1, noRestart: true,
			tasks: []depTask{{slot: 1, state: rejectedState}},
			want:  dependencyVerdict{failed: "db rejected"}},
		{name: "completed: one slot waits, one failed", cond: condCompleted, replicas: 2, noRestart: true,
			tasks: []depTask{{slot: 1, state: pendingState}, {slot: 2, state: failedState, exit: 3}},
			want:  dependencyVerdict{failed: "db failed (exit code 3)"}},
		{name: "completed: one slot done, one failed", cond: condCompleted, replicas: 2, noRestart: true,
			tasks: []depTask{{slot: 1, state: completeState}, {slot: 2, state: failedState, exit: 3}},
			want:  dependencyVerdict{failed: "db failed (exit code 3)"}},
	}
	now := time.Now()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var svc *berthv1.Service
			if !tt.missing {
				svc = newService("db", tt.replicas)
				svc.SpecVersion = 1
				if tt.noRestart {
					svc.Spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_NONE
				}
				svc.Spec.RestartPolicy.MaxAttempts = tt.maxAttempts
				for _, d := range tt.tasks {
					svc.SpecVersion = max(svc.SpecVersion, d.version)
				}
			}
			var tasks []*berthv1.Task
			for _, d := range tt.tasks {
				tasks = append(tasks, d.task(now))
			}
			got := judgeDependency(&berthv1.Dependency{Service: "db", Condition: tt.cond}, svc, tasks, now)
			if got != tt.want {
				t.Errorf("judgeDependency() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestJudgeGlobalDependency(t *testing.T) {
	svc := newService("agent", 0)
	svc.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	running := &berthv1.Task{Meta: &berthv1.Meta{Id: "a"}, NodeId: "n1", SpecVersion: 1, DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
		Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}}
	starting := &berthv1.Task{Meta: &berthv1.Meta{Id: "b"}, NodeId: "n2", SpecVersion: 1, DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
		Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_STARTING}}
	dep := &berthv1.Dependency{Service: "agent", Condition: condStarted}
	tests := []struct {
		name  string
		tasks []*berthv1.Task
		want  dependencyVerdict
	}{
		{"no task yet", nil, dependencyVerdict{waiting: "agent (started)"}},
		{"one node of two", []*berthv1.Task{running, starting}, dependencyVerdict{waiting: "agent (started)"}},
		{"every node", []*berthv1.Task{running}, dependencyVerdict{met: true}},
	}
	for _, tt := range tests {
		if got := judgeDependency(dep, svc, tt.tasks, time.Now()); got != tt.want {
			t.Errorf("%s: judgeDependency() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestWaitReason(t *testing.T) {
	tests := []struct {
		name     string
		verdicts []dependencyVerdict
		want     string
	}{
		{"none", nil, ""},
		{"all met", []dependencyVerdict{{met: true}, {met: true}}, ""},
		{"one waiting", []dependencyVerdict{{met: true}, {waiting: "db (healthy)"}}, "waiting for db (healthy)"},
		{"two waiting", []dependencyVerdict{{waiting: "cache (started)"}, {waiting: "db (healthy)"}}, "waiting for cache (started), db (healthy)"},
		{"waiting and failed", []dependencyVerdict{{waiting: "db (healthy)"}, {failed: "migrate failed (exit code 1)"}},
			"waiting for db (healthy); migrate failed (exit code 1)"},
		{"failed only", []dependencyVerdict{{met: true}, {failed: "migrate failed (exit code 1)"}}, "migrate failed (exit code 1)"},
	}
	for _, tt := range tests {
		if got := waitReason(tt.verdicts); got != tt.want {
			t.Errorf("%s: waitReason() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// setStatus changes a task's status in the store as its agent would.
func (h *harness) setStatus(task *berthv1.Task, change func(*berthv1.TaskStatus)) {
	h.t.Helper()
	_, err := h.store.Update(context.Background(), []store.Change{{Key: taskKey(task), Current: task, Apply: func(o store.Object) bool {
		t := o.(*berthv1.Task)
		st := &berthv1.TaskStatus{State: t.GetStatus().GetState(), Health: t.GetStatus().GetHealth(), Timestamp: timestamppb.Now()}
		change(st)
		return taskstate.Advance(t, st, time.Now())
	}}})
	if err != nil {
		h.t.Fatalf("setting the status of %s: %v", describe(task), err)
	}
}

func TestDependentsWaitForTheirDependencies(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	db := newService("db", 1)
	migrate := newService("migrate", 1)
	migrate.Spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_NONE
	web := newService("web", 2)
	web.Spec.DependsOn = []*berthv1.Dependency{{Service: "db", Condition: condHealthy}, {Service: "migrate", Condition: condCompleted}}
	var txn store.Txn
	for _, s := range []*berthv1.Service{db, migrate, web} {
		txn.Put(serviceKey(s), s)
	}
	h.commit(&txn)

	webWaits := func(reason string) func() bool {
		return func() bool {
			ts := h.tasks(web)
			return len(ts) == 2 && every(ts, pending) && every(ts, func(t *berthv1.Task) bool { return t.GetStatus().GetMessage() == reason })
		}
	}
	h.waitFor("db and migrate assigned, web waiting for both", func() bool {
		return len(h.tasks(db)) == 1 && assigned(h.tasks(db)[0]) && len(h.tasks(migrate)) == 1 && assigned(h.tasks(migrate)[0]) &&
			webWaits("waiting for db (healthy), migrate (completed successfully)")()
	})

	dbTask := h.tasks(db)[0]
	h.setStatus(dbTask, func(st *berthv1.TaskStatus) {
		st.State, st.Health = berthv1.TaskState_TASK_STATE_RUNNING, berthv1.Health_HEALTH_STARTING
	})
	migrateTask := h.tasks(migrate)[0]
	h.setStatus(migrateTask, func(st *berthv1.TaskStatus) { st.State = berthv1.TaskState_TASK_STATE_COMPLETE })
	h.waitFor("web waiting for db only", webWaits("waiting for db (healthy)"))

	dbTask, _ = h.cache.Task(dbTask.GetMeta().GetId())
	h.setStatus(dbTask, func(st *berthv1.TaskStatus) { st.Health = berthv1.Health_HEALTH_HEALTHY })
	h.waitFor("web assigned", func() bool {
		ts := h.tasks(web)
		return len(ts) == 2 && every(ts, assigned)
	})
}

func TestFailedDependencyKeepsDependentsWaiting(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	migrate := newService("migrate", 1)
	migrate.Spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_NONE
	migrate = h.putService(migrate)
	web := newService("web", 1)
	web.Spec.DependsOn = []*berthv1.Dependency{{Service: "migrate", Condition: condCompleted}}
	web = h.putService(web)
	h.waitFor("migrate assigned", func() bool {
		ts := h.tasks(migrate)
		return len(ts) == 1 && assigned(ts[0])
	})
	h.report(berthv1.TaskState_TASK_STATE_FAILED, h.tasks(migrate)[0])
	h.waitFor("web told that migrate failed", func() bool {
		ts := h.tasks(web)
		return len(ts) == 1 && pending(ts[0]) && ts[0].GetStatus().GetMessage() == "migrate failed (exit code 1)"
	})
	if ts := h.tasks(migrate); len(ts) != 1 {
		t.Fatalf("migrate has %d tasks, want its failed one only (restart: none):\n%s", len(ts), h.dump())
	}
}
