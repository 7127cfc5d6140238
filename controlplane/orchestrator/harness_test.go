package orchestrator

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for the orchestrator to act. It is far
// above what a pass takes; it only ends tests that would hang.
const waitTimeout = 20 * time.Second

// harness runs an orchestrator on a real embedded etcd, with the cache it
// reads. Tests write nodes, services and task statuses straight into the
// store, as the API server and the dispatcher would.
type harness struct {
	t     testing.TB
	store *store.Store
	cache *store.Cache
	sub   *store.Subscription
}

func newHarness(t testing.TB, opts ...Option) *harness {
	t.Helper()
	s := storetest.New(t)
	log := slog.New(slog.DiscardHandler)
	h := &harness{t: t, store: s, cache: store.NewCache(s, log)}
	h.sub = h.cache.Subscribe()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- h.cache.Run(ctx) }()
	go func() { defer wg.Done(); errs <- New(s, h.cache, log, opts...).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("run: %v", err)
			}
		}
	})
	select {
	case <-h.cache.Synced():
	case <-time.After(waitTimeout):
		t.Fatal("the cache did not load")
	}
	return h
}

// waitFor waits until cond holds, checking it again after every change
// the cache sees.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-h.sub.Ready():
			h.sub.Drain()
		case <-deadline.C:
			h.t.Fatalf("timed out waiting for %s; tasks:\n%s", what, h.dump())
		}
	}
}

func (h *harness) commit(txn *store.Txn) {
	h.t.Helper()
	if _, err := h.store.Commit(context.Background(), txn); err != nil {
		h.t.Fatalf("commit: %v", err)
	}
}

func (h *harness) putNode(n *berthv1.Node) {
	h.t.Helper()
	var txn store.Txn
	txn.Put(store.NodeKey(n.GetMeta().GetId()), n)
	h.commit(&txn)
}

// putService stores svc and returns it.
func (h *harness) putService(svc *berthv1.Service) *berthv1.Service {
	h.t.Helper()
	var txn store.Txn
	txn.Put(serviceKey(svc), svc)
	h.commit(&txn)
	return svc
}

// changeService applies change to a copy of svc, stores it and returns it.
func (h *harness) changeService(svc *berthv1.Service, change func(*berthv1.Service)) *berthv1.Service {
	h.t.Helper()
	next := proto.Clone(svc).(*berthv1.Service)
	change(next)
	return h.putService(next)
}

func (h *harness) deleteService(svc *berthv1.Service) {
	h.t.Helper()
	var txn store.Txn
	txn.Delete(serviceKey(svc), 0)
	h.commit(&txn)
}

// report moves tasks to state in one transaction, as an agent's reports
// would reach the store.
func (h *harness) report(state berthv1.TaskState, tasks ...*berthv1.Task) {
	h.t.Helper()
	if _, err := h.store.Update(context.Background(), reportChanges(state, tasks)); err != nil {
		h.t.Fatalf("reporting %s: %v", taskstate.Name(state), err)
	}
}

func reportChanges(state berthv1.TaskState, tasks []*berthv1.Task) []store.Change {
	changes := make([]store.Change, 0, len(tasks))
	for _, t := range tasks {
		changes = append(changes, store.Change{Key: taskKey(t), Current: t, Apply: func(o store.Object) bool {
			st := &berthv1.TaskStatus{State: state, Timestamp: timestamppb.Now()}
			if state == berthv1.TaskState_TASK_STATE_FAILED {
				st.ExitCode, st.Err = 1, "task: non-zero exit (1)"
			}
			return taskstate.Advance(o.(*berthv1.Task), st, time.Now())
		}})
	}
	return changes
}

// tasks returns the tasks of svc ordered by slot, node, then oldest first.
func (h *harness) tasks(svc *berthv1.Service) []*berthv1.Task {
	ts := h.cache.ServiceTasks(svc.GetMeta().GetId())
	sort.Slice(ts, func(i, j int) bool {
		a, b := ts[i], ts[j]
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if a.NodeId != b.NodeId {
			return a.NodeId < b.NodeId
		}
		return a.GetMeta().GetCreatedAt().AsTime().Before(b.GetMeta().GetCreatedAt().AsTime())
	})
	return ts
}

// dump describes every task, for failure messages.
func (h *harness) dump() string {
	var b strings.Builder
	for _, t := range h.cache.Tasks() {
		fmt.Fprintf(&b, "  %s slot=%d node=%q v%d desired=%s state=%s msg=%q\n", t.Service, t.Slot, t.NodeId,
			t.SpecVersion, taskstate.Name(t.DesiredState), taskstate.Name(t.GetStatus().GetState()), t.GetStatus().GetMessage())
	}
	return b.String()
}

func serviceKey(svc *berthv1.Service) string {
	return store.ServiceKey(svc.Namespace, svc.App, svc.Name)
}

func readyNode(id string, labels map[string]string) *berthv1.Node {
	return &berthv1.Node{
		Meta:         &berthv1.Meta{Id: id},
		Name:         id,
		Labels:       labels,
		Status:       berthv1.NodeStatus_NODE_STATUS_READY,
		Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
		Capacity:     &berthv1.Resources{MilliCpus: 2000, MemoryBytes: 4 << 30},
	}
}

// newService returns a replicated service of n replicas that restarts
// failed tasks after 10ms.
func newService(name string, replicas uint64) *berthv1.Service {
	return &berthv1.Service{
		Meta:      &berthv1.Meta{Id: store.NewID(), CreatedAt: timestamppb.Now()},
		Namespace: "default",
		App:       "app",
		Name:      name,
		Spec: &berthv1.ServiceSpec{
			Image:    "busybox",
			Mode:     berthv1.ServiceMode_SERVICE_MODE_REPLICATED,
			Replicas: replicas,
			RestartPolicy: &berthv1.RestartPolicy{
				Condition: berthv1.RestartCondition_RESTART_CONDITION_ANY,
				Delay:     durationpb.New(10 * time.Millisecond),
			},
		},
		SpecVersion: 1,
	}
}

// Predicates over a task list.

func isState(state berthv1.TaskState) func(*berthv1.Task) bool {
	return func(t *berthv1.Task) bool { return t.GetStatus().GetState() == state }
}

func desired(state berthv1.TaskState) func(*berthv1.Task) bool {
	return func(t *berthv1.Task) bool { return t.DesiredState == state }
}

func every(ts []*berthv1.Task, pred func(*berthv1.Task) bool) bool {
	for _, t := range ts {
		if !pred(t) {
			return false
		}
	}
	return true
}

func countOf(ts []*berthv1.Task, pred func(*berthv1.Task) bool) int {
	n := 0
	for _, t := range ts {
		if pred(t) {
			n++
		}
	}
	return n
}

// slotTasks returns the tasks of one slot, oldest first.
func slotTasks(ts []*berthv1.Task, slot uint64) []*berthv1.Task {
	var out []*berthv1.Task
	for _, t := range ts {
		if t.Slot == slot {
			out = append(out, t)
		}
	}
	return out
}

var (
	assigned = isState(berthv1.TaskState_TASK_STATE_ASSIGNED)
	pending  = isState(berthv1.TaskState_TASK_STATE_PENDING)
	wantRun  = desired(berthv1.TaskState_TASK_STATE_RUNNING)
	wantStop = desired(berthv1.TaskState_TASK_STATE_SHUTDOWN)
)
