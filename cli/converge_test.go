package cli

import (
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestJudgeRollout(t *testing.T) {
	const (
		running   = berthv1.TaskState_TASK_STATE_RUNNING
		pending   = berthv1.TaskState_TASK_STATE_PENDING
		failed    = berthv1.TaskState_TASK_STATE_FAILED
		complete  = berthv1.TaskState_TASK_STATE_COMPLETE
		updating  = berthv1.UpdateState_UPDATE_STATE_UPDATING
		paused    = berthv1.UpdateState_UPDATE_STATE_PAUSED
		completed = berthv1.UpdateState_UPDATE_STATE_COMPLETED
	)
	// web is version 2 of a service of 3 replicas.
	web := func() *berthv1.Service { return svcAt("web", 2, 3, 100) }
	tasks := func(svc *berthv1.Service, change func(ts []*berthv1.Task)) []*berthv1.Task {
		ts := runningTasks(svc)
		if change != nil {
			change(ts)
		}
		return ts
	}
	global := func() *berthv1.Service {
		svc := svcAt("agent", 2, 0, 100)
		svc.Spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
		return svc
	}
	onNode := func(task *berthv1.Task, node string) *berthv1.Task {
		task.Slot, task.NodeId = 0, node
		task.Meta.Id += node
		return task
	}

	tests := []struct {
		name    string
		svc     *berthv1.Service
		tasks   func(svc *berthv1.Service) []*berthv1.Task
		givenUp map[string]bool
		phase   rolloutPhase
		state   string
		updated int
		wanted  int
		reason  string // a part of the reason; "" checks it is empty
	}{
		{
			name:  "never updated, every task runs",
			svc:   web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseConverged, updated: 3, wanted: 3,
		},
		{
			name: "updating: one slot still runs the old version",
			svc:  withUpdate(web(), updating, ""),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) { ts[1] = taskOf(s, 2, 1, running) })
			},
			phase: phaseConverging, state: "updating", updated: 2, wanted: 3, reason: "web.2 runs version 1, not yet 2",
		},
		{
			name:  "updating: every task is new but the rollout still monitors them",
			svc:   withUpdate(web(), updating, ""),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseConverging, state: "updating", updated: 3, wanted: 3, reason: "still watches",
		},
		{
			name:  "update completed",
			svc:   withUpdate(web(), completed, "update to version 2 completed"),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseConverged, state: "completed", updated: 3, wanted: 3,
		},
		{
			name:  "update paused: the server's message is not repeated",
			svc:   withUpdate(web(), paused, "update paused: task web.2 failed: exit code 1"),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseFailed, state: "paused", updated: 3, wanted: 3, reason: "update paused: task web.2 failed: exit code 1",
		},
		{
			name: "update rolled back after a failure",
			svc: func() *berthv1.Service {
				s := withUpdate(web(), berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED, "rollback completed: rollback to version 1: update to version 2 failed")
				s.ChangeCause = "rollback to version 1: update to version 2 failed: exit code 1"
				return s
			}(),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseFailed, state: "rollback-completed", updated: 3, wanted: 3, reason: "the update was rolled back: rollback completed",
		},
		{
			name: "rollback asked for by rollout undo, completed",
			svc: func() *berthv1.Service {
				s := withUpdate(web(), berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED, "rollback completed: rollback to version 1")
				s.ChangeCause = "rollback to version 1"
				return s
			}(),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseConverged, state: "rollback-completed", updated: 3, wanted: 3,
		},
		{
			name:  "rollback paused",
			svc:   withUpdate(web(), berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED, "rollback paused: task web.1 failed"),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseFailed, state: "rollback-paused", updated: 3, wanted: 3, reason: "rollback paused: task web.1 failed",
		},
		{
			name: "a status older than the spec belongs to an earlier rollout",
			svc: func() *berthv1.Service {
				s := withUpdate(web(), paused, "update paused: old news")
				s.UpdateStatus.StartedAt = at(1)
				return s
			}(),
			tasks: func(s *berthv1.Service) []*berthv1.Task { return tasks(s, nil) },
			phase: phaseConverged, state: "", updated: 3, wanted: 3,
		},
		{
			name: "pending task says why",
			svc:  web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) {
					ts[2].Status = &berthv1.TaskStatus{State: pending, Message: "no suitable node (insufficient memory on 2 nodes)"}
				})
			},
			phase: phaseConverging, updated: 2, wanted: 3, reason: "web.3 pending: no suitable node (insufficient memory on 2 nodes)",
		},
		{
			name: "a missing slot",
			svc:  web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, nil)[:2]
			},
			phase: phaseConverging, updated: 2, wanted: 3, reason: "web.3 has no task yet",
		},
		{
			name: "running but not yet healthy",
			svc:  web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) { ts[0].Status.Health = berthv1.Health_HEALTH_STARTING })
			},
			phase: phaseConverging, updated: 2, wanted: 3, reason: "web.1 running, starting",
		},
		{
			name: "a health check in the spec but no result yet",
			svc: func() *berthv1.Service {
				s := web()
				s.Spec.Healthcheck = &berthv1.HealthCheck{HttpPort: 8080}
				return s
			}(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) {
					for _, t := range ts[1:] {
						t.Status.Health = berthv1.Health_HEALTH_HEALTHY
					}
				})
			},
			phase: phaseConverging, updated: 2, wanted: 3, reason: "web.1 running, no health result yet",
		},
		{
			name: "a failed task whose restarts were given up",
			svc:  web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) { ts[1].Status = &berthv1.TaskStatus{State: failed, ExitCode: 3} })
			},
			givenUp: map[string]bool{"t-web-2-v2": true},
			phase:   phaseFailed, updated: 2, wanted: 3, reason: "web.2 failed (exit code 3); its restart attempts are used up",
		},
		{
			name: "a failed task that will be restarted",
			svc:  web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) {
					ts[1].Status = &berthv1.TaskStatus{State: failed, ExitCode: 137, OomKilled: true}
				})
			},
			phase: phaseConverging, updated: 2, wanted: 3, reason: "web.2 failed (oom), restarting",
		},
		{
			name: "a failed task and the restart policy is none",
			svc: func() *berthv1.Service {
				s := web()
				s.Spec.RestartPolicy = &berthv1.RestartPolicy{Condition: berthv1.RestartCondition_RESTART_CONDITION_NONE}
				return s
			}(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) { ts[0].Status = &berthv1.TaskStatus{State: failed, Err: "no such image"} })
			},
			phase: phaseFailed, updated: 2, wanted: 3, reason: "web.1 failed (no such image) and the restart policy is none",
		},
		{
			name: "one-shot tasks that completed",
			svc: func() *berthv1.Service {
				s := svcAt("migrate", 2, 1, 100)
				s.Spec.RestartPolicy = &berthv1.RestartPolicy{Condition: berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE}
				return s
			}(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return []*berthv1.Task{taskOf(s, 1, 2, complete)}
			},
			phase: phaseConverged, updated: 1, wanted: 1,
		},
		{
			name: "the newest task of a slot counts",
			svc:  web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				old := taskOf(s, 1, 2, failed)
				old.Meta.Id, old.Meta.CreatedAt = "t-old", at(1)
				return append(tasks(s, nil), old)
			},
			phase: phaseConverged, updated: 3, wanted: 3,
		},
		{
			name: "a task being stopped",
			svc:  web(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return tasks(s, func(ts []*berthv1.Task) { ts[2].DesiredState = berthv1.TaskState_TASK_STATE_SHUTDOWN })
			},
			phase: phaseConverging, updated: 2, wanted: 3, reason: "web.3 is stopping",
		},
		{
			name:  "scaled to zero",
			svc:   svcAt("web", 2, 0, 100),
			tasks: func(*berthv1.Service) []*berthv1.Task { return nil },
			phase: phaseConverged, updated: 0, wanted: 0,
		},
		{
			name: "global: one task per node, all current",
			svc:  global(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return []*berthv1.Task{onNode(taskOf(s, 0, 2, running), "n1aaaaaaaaaaaaaaaa"), onNode(taskOf(s, 0, 2, running), "n2bbbbbbbbbbbbbbbb")}
			},
			phase: phaseConverged, updated: 2, wanted: 2,
		},
		{
			name: "global: a node still runs the old version",
			svc:  global(),
			tasks: func(s *berthv1.Service) []*berthv1.Task {
				return []*berthv1.Task{onNode(taskOf(s, 0, 2, running), "n1aaaaaaaaaaaaaaaa"), onNode(taskOf(s, 0, 1, running), "n2bbbbbbbbbbbbbbbb")}
			},
			phase: phaseConverging, updated: 1, wanted: 2, reason: "agent@node-2 runs version 1, not yet 2",
		},
		{
			name:  "global: no task yet",
			svc:   global(),
			tasks: func(*berthv1.Service) []*berthv1.Task { return nil },
			phase: phaseConverging, updated: 0, wanted: 0, reason: "no task placed yet",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := judgeRollout(rolloutInput{
				Service: tt.svc, Tasks: tt.tasks(tt.svc), GivenUp: tt.givenUp,
				NodeNames: map[string]string{"n1aaaaaaaaaaaaaaaa": "node-1", "n2bbbbbbbbbbbbbbbb": "node-2"},
			})
			if got.Phase != tt.phase || got.State != tt.state || got.Updated != tt.updated || got.Wanted != tt.wanted {
				t.Errorf("verdict = phase %d, state %q, %d/%d; want phase %d, state %q, %d/%d (reason %q)",
					got.Phase, got.State, got.Updated, got.Wanted, tt.phase, tt.state, tt.updated, tt.wanted, got.Reason)
			}
			if (tt.reason == "") != (got.Reason == "") || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", got.Reason, tt.reason)
			}
		})
	}
}

func TestJoinReasonsCountsTheRest(t *testing.T) {
	got := joinReasons([]string{"a", "b", "c", "d", "e"})
	if got != "a; b; c; and 2 more" {
		t.Errorf("joinReasons = %q", got)
	}
}
