package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
)

// usageOf counts tasks in a Usage the way an owner would over time: every
// task arrives, some change and go, and what is left is the snapshot's
// tasks.
func usageOf(rng *rand.Rand, tasks []*berthv1.Task) *Usage {
	u := NewUsage()
	for k, t := range tasks {
		u.Update(t)
		switch rng.IntN(4) {
		case 0:
			// A task that finished and is gone.
			gone := proto.Clone(t).(*berthv1.Task)
			gone.Meta.Id = fmt.Sprintf("gone-%d", k)
			u.Update(gone)
			u.Remove(gone.GetMeta().GetId())
		case 1:
			// A task that ended: it no longer holds room.
			ended := proto.Clone(t).(*berthv1.Task)
			ended.Meta.Id = fmt.Sprintf("ended-%d", k)
			u.Update(ended)
			ended.Status.State = berthv1.TaskState_TASK_STATE_FAILED
			u.Update(ended)
		case 2:
			// The same task seen again, unchanged.
			u.Update(t)
		}
	}
	return u
}

func TestScheduleWithUsageMatchesCountingTasks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for iter := range 2000 {
		snap, pending := randomCluster(rng)
		// A pending task that is also counted (placed before) is left out
		// on both paths.
		if len(pending) > 0 && len(snap.Nodes) > 0 && rng.IntN(3) == 0 {
			placed := proto.Clone(pending[0]).(*berthv1.Task)
			running(snap.Nodes[0].GetMeta().GetId())(placed)
			snap.Tasks = append(snap.Tasks, placed)
		}
		withUsage := snap
		withUsage.Usage, withUsage.Tasks = usageOf(rng, snap.Tasks), nil
		if got, want := withUsage.Usage.Len(), countHolding(snap.Tasks); got != want {
			t.Fatalf("iteration %d: usage counts %d tasks, want %d", iter, got, want)
		}
		got := Schedule(withUsage, pending)
		want := Schedule(snap, pending)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("iteration %d: with a Usage, Schedule() =\n  %+v\ncounting tasks gives\n  %+v", iter, got, want)
		}
		if len(snap.Tasks) > 0 {
			svc := serviceKey(snap.Tasks[0])
			var service []*berthv1.Task
			for _, tk := range snap.Tasks {
				if serviceKey(tk) == svc {
					service = append(service, tk)
				}
			}
			if got, want := Rebalance(withUsage, service, 3), Rebalance(snap, service, 3); !reflect.DeepEqual(got, want) {
				t.Fatalf("iteration %d: with a Usage, Rebalance() = %+v, counting tasks gives %+v", iter, got, want)
			}
		}
	}
}

func countHolding(tasks []*berthv1.Task) int {
	seen := map[string]bool{}
	for _, t := range tasks {
		if Holds(t) {
			seen[t.GetMeta().GetId()] = true
		}
	}
	return len(seen)
}

func TestUsageForgetsWhatItCountedOnce(t *testing.T) {
	u := NewUsage()
	tk := task("a", "web", reserve(500, gib), publish(8080, "tcp", ""), running("n1"))
	u.Update(tk)
	u.Update(tk)
	if n := u.nodes["n1"]; n == nil || n.tasks != 1 || n.cpu != 500 || n.memory != gib || n.ports[newHostPort(8080, "tcp", "")] != 1 {
		t.Fatalf("after two updates of one task, node n1 holds %+v, want one task's worth", n)
	}
	u.Remove("a")
	if len(u.nodes) != 0 || len(u.services) != 0 || u.Len() != 0 {
		t.Fatalf("after removing the only task, usage still holds nodes %v services %v", u.nodes, u.services)
	}
}
