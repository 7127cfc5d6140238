package orchestrator

import (
	"slices"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/slot"
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
	now := o.now()
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
				v = judgeDependency(d, svc, tasks, now)
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
// no such service exists), by the slot model (api/slot): every slot the
// service wants must meet the condition, as Compose waits for every
// container of a dependency. Only tasks of the service's current version
// count: dependents wait for what the user last applied. A slot whose task
// ended and that the restart policy gives up on has failed.
func judgeDependency(dep *berthv1.Dependency, svc *berthv1.Service, tasks []*berthv1.Task, now time.Time) dependencyVerdict {
	name, cond := dep.GetService(), dep.GetCondition()
	waiting := dependencyVerdict{waiting: name + " (" + conditionWords(cond) + ")"}
	if svc == nil {
		waiting.waiting = name + " (not deployed)"
		return waiting
	}
	slots := slot.Wanted(svc, slot.Group(tasks), nil)
	if len(slots) == 0 {
		// Nothing is meant to run (scaled to zero): nothing to wait for.
		if svc.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			return dependencyVerdict{met: true}
		}
		return waiting
	}
	// A failed slot is named even when another still waits: waiting
	// longer will not help.
	verdict := dependencyVerdict{met: true}
	for _, s := range slots {
		gaveUp := func(*berthv1.Task) bool {
			ended := slices.DeleteFunc(slices.Clone(s.Tasks), taskstate.Live)
			return len(ended) > 0 && !decideRestart(svc.GetSpec().GetRestartPolicy(), ended, now).restart
		}
		v := slot.Judge(svc, s, slotCondition(cond), gaveUp)
		switch v.Phase {
		case slot.Waiting:
			verdict = waiting
		case slot.Failed:
			return dependencyVerdict{failed: name + " " + taskstate.Ended(v.Task.GetStatus())}
		}
	}
	return verdict
}

// slotCondition is the slot model's condition for a depends_on condition.
func slotCondition(c berthv1.DependencyCondition) slot.Condition {
	switch c {
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY:
		return slot.Healthy
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY:
		return slot.CompletedSuccessfully
	}
	return slot.Started
}
