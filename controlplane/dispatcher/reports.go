package dispatcher

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
)

// pendingReports are the statuses one node reported for one task since the
// last write, oldest first: applying all of them keeps every step in the
// task's history.
type pendingReports struct {
	nodeID   string
	statuses []*berthv1.TaskStatus
}

// reportQueue collects status reports from every session. The writer takes
// all of them at once, so however many arrive while one transaction is in
// flight, they go out together in the next.
type reportQueue struct {
	mu      sync.Mutex
	pending map[string]*pendingReports
	ready   chan struct{}
}

func newReportQueue() *reportQueue {
	return &reportQueue{pending: map[string]*pendingReports{}, ready: make(chan struct{}, 1)}
}

func (q *reportQueue) add(nodeID string, reports []*berthv1.TaskStatusReport) {
	if len(reports) == 0 {
		return
	}
	q.mu.Lock()
	for _, r := range reports {
		if r.GetStatus() == nil {
			continue
		}
		p := q.pending[r.TaskId]
		if p == nil || p.nodeID != nodeID {
			p = &pendingReports{nodeID: nodeID}
			q.pending[r.TaskId] = p
		}
		p.statuses = append(p.statuses, r.Status)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// requeue puts back a batch that could not be written, before anything
// queued since, so each task's reports stay in order.
func (q *reportQueue) requeue(batch map[string]*pendingReports) {
	q.mu.Lock()
	for id, p := range batch {
		if newer := q.pending[id]; newer != nil && newer.nodeID == p.nodeID {
			p.statuses = append(p.statuses, newer.statuses...)
		} else if newer != nil {
			continue // the task moved to another node meanwhile
		}
		q.pending[id] = p
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *reportQueue) take() map[string]*pendingReports {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending = map[string]*pendingReports{}
	return out
}

// noteStatusChanges remembers the batch's tasks as they are before its
// reports are applied. The function it returns, called once the write is
// in the cache, records an event for each failure, rejection and health
// change the write made: comparing the stored task before and after, not
// the reports, says what actually changed, once.
func (d *Dispatcher) noteStatusChanges(batch map[string]*pendingReports) func() {
	before := make(map[string]*berthv1.Task, len(batch))
	for id := range batch {
		if t, ok := d.cfg.Cache.Task(id); ok {
			before[id] = t
		}
	}
	return func() {
		for id, old := range before {
			t, ok := d.cfg.Cache.Task(id)
			if !ok || t == old {
				continue
			}
			var nodeName string
			if n, ok := d.cfg.Cache.Node(t.NodeId); ok {
				nodeName = n.Name
			}
			for _, ev := range statusEvents(old, t, nodeName) {
				d.cfg.Store.RecordEvent(ev)
			}
		}
	}
}

// statusEvents are the events of a task's status going from old's to t's
// on node nodeName: it failed, was rejected, or its health changed.
func statusEvents(old, t *berthv1.Task, nodeName string) []*berthv1.Event {
	name := store.TaskName(t)
	where := cmp.Or(nodeName, t.NodeId)
	st, prev := t.GetStatus(), old.GetStatus()
	var out []*berthv1.Event
	if h := st.GetHealth(); h != prev.GetHealth() && (h == berthv1.Health_HEALTH_HEALTHY || h == berthv1.Health_HEALTH_UNHEALTHY) {
		word := strings.ToLower(strings.TrimPrefix(h.String(), "HEALTH_"))
		msg := fmt.Sprintf("task %s on node %s is %s", name, where, word)
		if h == berthv1.Health_HEALTH_UNHEALTHY && st.GetErr() != "" {
			msg += ": " + strings.TrimPrefix(st.GetErr(), "unhealthy: ")
		}
		ev := store.TaskEvent(t, "health", msg, nodeName)
		ev.Attributes["health"] = word
		out = append(out, ev)
	}
	if st.GetState() == prev.GetState() {
		return out
	}
	var ev *berthv1.Event
	switch st.GetState() {
	case berthv1.TaskState_TASK_STATE_FAILED:
		ev = store.TaskEvent(t, "fail", fmt.Sprintf("task %s failed on node %s: %s", name, where, taskstate.EndReason(st)), nodeName)
	case berthv1.TaskState_TASK_STATE_REJECTED:
		ev = store.TaskEvent(t, "reject", fmt.Sprintf("task %s was rejected by node %s: %s", name, where, taskstate.EndReason(st)), nodeName)
	default:
		return out
	}
	if st.GetExitCode() != 0 {
		ev.Attributes[store.AttrExitCode] = strconv.Itoa(int(st.GetExitCode()))
	}
	if ts := st.GetTimestamp(); ts != nil {
		ev.At = ts
	}
	return append(out, ev)
}
