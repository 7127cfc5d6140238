package orchestrator

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkPassOneTaskFailed times the orchestrator's pass after one task
// of a service of 10,000 running tasks failed: it must reconcile the
// slot, make and place the replacement. The cost should not grow with the
// service's other 9,999 tasks.
func BenchmarkPassOneTaskFailed(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) { benchPassOneTaskFailed(b, n) })
	}
}

func benchPassOneTaskFailed(b *testing.B, n int) {
	o, victim := oneFailedFixture(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var w writes
		o.passAfter(victim, &w)
		o.place(&w)
		if len(w.creates) != 1 || w.creates[0].NodeId == "" {
			b.Fatalf("the pass made %d tasks, want one placed replacement", len(w.creates))
		}
	}
}

// oneFailedFixture stores a service of n replicas over 10 nodes, all
// running but one, which failed, and returns an orchestrator that made its
// first (whole) pass over it, with the failed task.
func oneFailedFixture(b testing.TB, n int) (*Orchestrator, *berthv1.Task) {
	s := storetest.New(b)
	ctx := context.Background()
	var nodes []string
	var txn store.Txn
	for i := range 10 {
		node := readyNode(fmt.Sprintf("node-%d", i), nil)
		node.Capacity = &berthv1.Resources{MilliCpus: 1 << 30, MemoryBytes: 1 << 50}
		txn.Put(store.NodeKey(node.GetMeta().GetId()), node)
		nodes = append(nodes, node.GetMeta().GetId())
	}
	svc := newService("web", uint64(n))
	txn.Put(serviceKey(svc), svc)
	if _, err := s.Commit(ctx, &txn); err != nil {
		b.Fatal(err)
	}
	created := time.Now().Add(-time.Hour)
	var victim *berthv1.Task
	var rev int64
	for start := 0; start < n; start += 100 {
		var txn store.Txn
		for i := start; i < min(start+100, n); i++ {
			t := newTask(svc, uint64(i+1), nodes[i%len(nodes)], created)
			t.Status = &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING, Timestamp: timestamppb.New(created)}
			if i == n/2 {
				t.Status = &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_FAILED, ExitCode: 1, Timestamp: timestamppb.New(created)}
				victim = t
			}
			txn.Put(taskKey(t), t)
		}
		var err error
		if rev, err = s.Commit(ctx, &txn); err != nil {
			b.Fatal(err)
		}
	}
	c := storetest.NewCache(b, s)
	if err := c.WaitRevision(ctx, rev); err != nil {
		b.Fatal(err)
	}
	o := New(s, c, slog.New(slog.DiscardHandler))
	o.index.rebuild(c.Tasks())
	o.rebuildAddresses()
	// The orchestrator's first pass after it starts covers everything.
	var first writes
	o.reconcileAll(&first)
	victim, _ = c.Task(victim.GetMeta().GetId())
	return o, victim
}

// passAfter is the pass Run makes after an event about t alone.
func (o *Orchestrator) passAfter(t *berthv1.Task, w *writes) {
	dirty := dirtySet{}
	dirty.task(t)
	o.reconcileServices(dirty, w)
}

// BenchmarkReplacementAfterFailure times the control plane's share of a
// crash recovery, on a real embedded etcd: from the write of a task's
// failure (as the dispatcher writes an agent's report) to its replacement
// stored, placed on a node, in the cache the dispatcher sends from. The
// rest of a recovery is the agent's: creating and starting the container.
func BenchmarkReplacementAfterFailure(b *testing.B) {
	h := newHarness(b)
	h.putNode(readyNode("n1", nil))
	h.putNode(readyNode("n2", nil))
	svc := newService("web", 10)
	svc.Spec.RestartPolicy.Delay = nil
	svc = runningService(h, svc)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		slot := uint64(i%10) + 1
		var victim *berthv1.Task
		for _, t := range h.tasks(svc) {
			if t.Slot == slot && wantRun(t) && running(t) {
				victim = t
			}
		}
		if victim == nil {
			b.Fatalf("no running task in slot %d:\n%s", slot, h.dump())
		}
		h.report(berthv1.TaskState_TASK_STATE_FAILED, victim)
		h.waitFor("the replacement placed", func() bool {
			return countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.Slot == slot && assigned(t) }) == 1
		})
		b.StopTimer()
		var changes []store.Change
		for _, t := range h.tasks(svc) {
			if assigned(t) {
				// Running for a minute already: its failure next round is
				// restarted at once, without the backoff of a crash loop.
				changes = append(changes, store.Change{Key: taskKey(t), Current: t, Apply: func(o store.Object) bool {
					st := &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING, Timestamp: timestamppb.New(time.Now().Add(-time.Minute))}
					return taskstate.Advance(o.(*berthv1.Task), st, time.Now())
				}})
			}
		}
		if _, err := h.store.Update(context.Background(), changes); err != nil {
			b.Fatal(err)
		}
		h.waitFor("every slot running", func() bool {
			return countOf(h.tasks(svc), and(running, wantRun)) == 10
		})
		b.StartTimer()
	}
}
