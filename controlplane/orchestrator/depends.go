package orchestrator

import (
	"fmt"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
)

// holdForDependencies splits pending tasks into those free to be placed and
// those whose service's depends_on is not met yet, which stay pending with
// the reason ("waiting for db (healthy)"). It needs no timer: a dependency
// meets its condition through a task status change, which is a store
// event, which starts a pass that places pending tasks again.
func (o *Orchestrator) holdForDependencies(pending []*berthv1.Task) (free []*berthv1.Task, held []scheduler.Unplaced) {
	// Tasks of one service share their dependencies: judge each once.
	judged := map[string]dependencyVerdict{}
	for _, t := range pending {
		deps := t.GetSpec().GetDependsOn()
		if len(deps) == 0 {
			free = append(free, t)
			continue
		}
		var verdicts []dependencyVerdict
		for _, d := range deps {
			key := store.ServiceKey(t.Namespace, t.App, d.GetService())
			memo := key + "\x00" + d.GetCondition().String()
			v, ok := judged[memo]
			if !ok {
				svc, _ := o.cache.Service(key)
				var tasks []*berthv1.Task
				if svc != nil {
					tasks = o.cache.ServiceTasks(svc.GetMeta().GetId())
				}
				v = judgeDependency(d, svc, tasks)
				judged[memo] = v
			}
			verdicts = append(verdicts, v)
		}
		if reason := waitReason(verdicts); reason != "" {
			held = append(held, scheduler.Unplaced{TaskID: t.GetMeta().GetId(), Reason: reason})
			continue
		}
		free = append(free, t)
	}
	return free, held
}

// dependencyVerdict is whether one dependency meets its condition.
type dependencyVerdict struct {
	met bool
	// waiting names what is awaited, like "db (healthy)", when the
	// condition may still be met.
	waiting string
	// failed says why it never will without a change, like "migrate
	// failed (exit code 1)".
	failed string
}

// waitReason joins the verdicts of a service's dependencies into what its
// tasks wait for: "waiting for db (healthy), cache (started)", then the
// failures: "migrate failed (exit code 1)". It is "" when all are met.
func waitReason(verdicts []dependencyVerdict) string {
	var waiting, failed []string
	for _, v := range verdicts {
		switch {
		case v.met:
		case v.failed != "":
			failed = append(failed, v.failed)
		default:
			waiting = append(waiting, v.waiting)
		}
	}
	var parts []string
	if len(waiting) > 0 {
		parts = append(parts, "waiting for "+strings.Join(waiting, ", "))
	}
	return strings.Join(append(parts, failed...), "; ")
}

// conditionWords says a condition the way ps shows it.
func conditionWords(c berthv1.DependencyCondition) string {
	switch c {
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY:
		return "healthy"
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY:
		return "completed successfully"
	}
	return "started"
}

// judgeDependency decides whether dep is met by the tasks of svc (nil when
// no such service exists). Only tasks of the service's current version
// count: dependents wait for what the user last applied. Every wanted slot
// must meet the condition, as Compose waits for every container of a
// dependency:
//   - started: a task of the slot runs, or ran and completed;
//   - healthy: a task of the slot runs and its health check passes;
//   - completed successfully: the newest finished task of the slot exited
//     with code 0. When it failed and no new attempt is under way (the
//     restart policy gave up), the dependency has failed.
func judgeDependency(dep *berthv1.Dependency, svc *berthv1.Service, tasks []*berthv1.Task) dependencyVerdict {
	name, cond := dep.GetService(), dep.GetCondition()
	waiting := dependencyVerdict{waiting: name + " (" + conditionWords(cond) + ")"}
	if svc == nil {
		waiting.waiting = name + " (not deployed)"
		return waiting
	}
	slots, wanted := currentSlots(svc, tasks)
	if wanted == 0 {
		// Nothing is meant to run (scaled to zero): nothing to wait for.
		if svc.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			return dependencyVerdict{met: true}
		}
		return waiting
	}
	if len(slots) < wanted {
		return waiting
	}
	for _, ts := range slots {
		v := judgeSlot(name, cond, ts)
		if !v.met {
			if v.failed == "" {
				return waiting
			}
			return v
		}
	}
	return dependencyVerdict{met: true}
}

// currentSlots groups the tasks of svc's current version by slot, keeping
// the slots the service wants (1 to replicas; for a global service, those
// whose tasks are meant to run), newest task first. It returns how many
// slots are wanted too.
func currentSlots(svc *berthv1.Service, tasks []*berthv1.Task) (map[string][]*berthv1.Task, int) {
	global := svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	slots := map[string][]*berthv1.Task{}
	for _, t := range tasks {
		if t.SpecVersion != svc.SpecVersion {
			continue
		}
		if global && t.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		if !global && (t.Slot < 1 || t.Slot > svc.GetSpec().GetReplicas()) {
			continue
		}
		slots[taskstate.Slot(t)] = append(slots[taskstate.Slot(t)], t)
	}
	for _, ts := range slots {
		sortNewestFirst(ts)
	}
	if global {
		return slots, len(slots)
	}
	return slots, int(svc.GetSpec().GetReplicas())
}

// judgeSlot decides whether the tasks of one slot (newest first) meet cond.
func judgeSlot(name string, cond berthv1.DependencyCondition, ts []*berthv1.Task) dependencyVerdict {
	switch cond {
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY:
		for _, t := range ts {
			st := t.GetStatus()
			if st.GetState() == berthv1.TaskState_TASK_STATE_RUNNING && st.GetHealth() == berthv1.Health_HEALTH_HEALTHY {
				return dependencyVerdict{met: true}
			}
		}
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY:
		retrying := false
		for _, t := range ts {
			st := t.GetStatus()
			if !taskstate.Terminal(st.GetState()) {
				retrying = retrying || t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING
				continue
			}
			if st.GetState() == berthv1.TaskState_TASK_STATE_COMPLETE && st.GetExitCode() == 0 {
				return dependencyVerdict{met: true}
			}
			if retrying {
				break
			}
			return dependencyVerdict{failed: endedWords(name, st)}
		}
	default:
		for _, t := range ts {
			switch t.GetStatus().GetState() {
			case berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_COMPLETE:
				return dependencyVerdict{met: true}
			}
		}
	}
	return dependencyVerdict{}
}

// endedWords says how a dependency's task ended without success:
// "migrate failed (exit code 1)", "migrate rejected (no such image)".
func endedWords(name string, st *berthv1.TaskStatus) string {
	state := taskstate.Name(st.GetState())
	switch {
	case st.GetState() == berthv1.TaskState_TASK_STATE_FAILED && st.GetExitCode() != 0:
		return fmt.Sprintf("%s %s (exit code %d)", name, state, st.GetExitCode())
	case st.GetErr() != "":
		return fmt.Sprintf("%s %s (%s)", name, state, st.GetErr())
	}
	return name + " " + state
}
