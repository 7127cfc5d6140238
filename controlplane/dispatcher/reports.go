package dispatcher

import (
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
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

// heartbeats remembers when each node was last heard from, and its image
// list when it changed, until the next write.
type heartbeats struct {
	mu     sync.Mutex
	last   map[string]time.Time
	images map[string][]string
}

func newHeartbeats() *heartbeats {
	return &heartbeats{last: map[string]time.Time{}, images: map[string][]string{}}
}

func (h *heartbeats) seen(nodeID string, images []string) {
	h.mu.Lock()
	h.last[nodeID] = time.Now()
	if images != nil {
		h.images[nodeID] = images
	}
	h.mu.Unlock()
}

func (h *heartbeats) take() (map[string]time.Time, map[string][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	last, images := h.last, h.images
	h.last, h.images = map[string]time.Time{}, map[string][]string{}
	return last, images
}
