package orchestrator

import (
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// notReady returns node id, connected but failing its network condition
// since since.
func notReady(id string, since time.Time) *berthv1.Node {
	n := readyNode(id, nil)
	n.Conditions = []*berthv1.NodeCondition{
		{Type: "runtime", Ok: true, Since: timestamppb.New(since.Add(-time.Hour))},
		{Type: "network", Message: "subnet held by br-x", Since: timestamppb.New(since)},
	}
	return n
}

func TestNotReadyNodes(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	grace := 30 * time.Second
	down := notReady("down", now.Add(-time.Hour))
	down.Status = berthv1.NodeStatus_NODE_STATUS_DOWN
	for _, tc := range []struct {
		name   string
		nodes  []*berthv1.Node
		moving []string
		wake   time.Time
	}{
		{"all ready", []*berthv1.Node{readyNode("a", nil)}, nil, time.Time{}},
		{"within the grace: wake at its end", []*berthv1.Node{notReady("a", now.Add(-10*time.Second)), notReady("b", now.Add(-20*time.Second))},
			nil, now.Add(10 * time.Second)},
		{"past the grace: moving", []*berthv1.Node{notReady("a", now.Add(-31*time.Second)), notReady("b", now.Add(-5*time.Second))},
			[]string{"a"}, now.Add(25 * time.Second)},
		{"at the grace's end", []*berthv1.Node{notReady("a", now.Add(-grace))}, []string{"a"}, time.Time{}},
		{"a down node is the node health's, not this", []*berthv1.Node{down}, nil, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			moving, wake := notReadyNodes(tc.nodes, now, grace)
			if len(moving) != len(tc.moving) || !wake.Equal(tc.wake) {
				t.Fatalf("notReadyNodes = %v, %v; want %v, %v", moving, wake, tc.moving, tc.wake)
			}
			for _, id := range tc.moving {
				if why := moving[id]; !strings.Contains(why, "has not been ready for 30s (network: subnet held by br-x)") {
					t.Errorf("why %s moves = %q", id, why)
				}
			}
		})
	}
}

// clock is a time the test sets.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// TestNotReadyNodeTasksMoveAfterGrace: a node that stays not ready keeps
// its tasks through the grace, then they are replaced elsewhere, the
// replacements first, as from a drained node.
func TestNotReadyNodeTasksMoveAfterGrace(t *testing.T) {
	t0 := time.Now()
	clk := &clock{now: t0}
	h := newHarness(t, WithNotReadyGrace(30*time.Second), func(o *Orchestrator) { o.now = clk.Now })
	h.putNode(readyNode("n1", nil))
	svc := runningService(h, newService("web", 2))
	h.putNode(readyNode("n2", nil))

	// n1 fails a condition; in the same transaction a probe service
	// appears, so that once its task exists the orchestrator has made a
	// pass that saw n1 not ready.
	probe := newService("probe", 1)
	var txn store.Txn
	txn.Put(store.NodeKey("n1"), notReady("n1", t0.Add(-10*time.Second)))
	txn.Put(serviceKey(probe), probe)
	h.commit(&txn)
	h.waitFor("the probe's task placed", func() bool { return countOf(h.tasks(probe), assigned) == 1 })
	if n := countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.NodeId == "n1" && wantRun(t) }); n != 2 || len(h.tasks(svc)) != 2 {
		t.Fatalf("within the grace the tasks on n1 must stay:\n%s", h.dump())
	}

	// Past the grace: the next pass (a node joining brings one) moves them.
	clk.set(t0.Add(21 * time.Second))
	h.putNode(readyNode("n3", nil))
	h.waitFor("two replacements off n1", func() bool {
		return countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.NodeId != "n1" && assigned(t) }) == 2
	})
	for _, task := range h.tasks(svc) {
		if task.NodeId != "n1" {
			if task.ReplaceCause != berthv1.ReplaceCause_REPLACE_CAUSE_NODE_NOT_READY {
				t.Errorf("replacement %s has cause %v, want node not ready", task.GetMeta().GetId(), task.ReplaceCause)
			}
			h.report(berthv1.TaskState_TASK_STATE_RUNNING, task)
		}
	}
	h.waitFor("the tasks on n1 told to stop", func() bool {
		return countOf(h.tasks(svc), func(t *berthv1.Task) bool { return t.NodeId == "n1" && wantStop(t) }) == 2
	})
}
