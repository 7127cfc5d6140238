package worker

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"
)

// The defaults of the node's work limits. Each container start costs
// containerd, runc and the kernel a burst of CPU and processes; with no
// bound, hundreds at once starved the agent's heartbeats (the node was
// declared down) and left thousands of half-made network namespaces.
const (
	// maxDefaultStarts caps the default of concurrent starts on large
	// machines, where containerd's own locks are the limit.
	maxDefaultStarts = 16
	// DefaultMaxConcurrentPulls bounds image fetches: each holds
	// connections and writes layers to the same disk.
	DefaultMaxConcurrentPulls = 3
)

// DefaultMaxConcurrentStarts is the default bound on container creates
// and starts at once: two per CPU, at most 16.
func DefaultMaxConcurrentStarts() int {
	return min(2*runtime.NumCPU(), maxDefaultStarts)
}

// slotReportPeriod is how often a waiter's place in line is looked at.
const slotReportPeriod = time.Second

// slots bounds how many runners do one kind of heavy work at once. Waiters
// are served first come, first served, so a task's place in the queue only
// moves forward and its wait can be shown ("3 ahead").
type slots struct {
	// limit <= 0 means no bound.
	limit int
	// tick is how often a waiter's place is looked at again, to report it.
	tick time.Duration

	mu    sync.Mutex
	held  int
	queue []*slotWaiter
}

// slotWaiter is one runner waiting for a slot; ready is closed when it has
// been handed one.
type slotWaiter struct {
	ready   chan struct{}
	granted bool // guarded by slots.mu
}

func newSlots(limit int) *slots {
	return &slots{limit: limit, tick: slotReportPeriod}
}

// acquire takes a slot, waiting in line while none is free. waiting, when
// set, is called on the caller's goroutine with the number of waiters
// ahead when the wait begins, then each time that number has halved since
// the last call: each call becomes a status report to the control plane,
// so a wait costs a few (log2 of the line) however long the line. release
// gives the slot back (to the next waiter); calling it more than once does
// nothing. When ctx ends first, the wait ends with ctx's error and no slot
// is held.
func (s *slots) acquire(ctx context.Context, waiting func(ahead int)) (release func(), err error) {
	if s == nil || s.limit <= 0 {
		return func() {}, nil
	}
	s.mu.Lock()
	if s.held < s.limit && len(s.queue) == 0 {
		s.held++
		s.mu.Unlock()
		return s.releaser(), nil
	}
	w := &slotWaiter{ready: make(chan struct{})}
	s.queue = append(s.queue, w)
	ahead := len(s.queue) - 1
	s.mu.Unlock()
	if waiting != nil {
		waiting(ahead)
	}
	ticker := time.NewTicker(s.tick)
	defer ticker.Stop()
	for {
		select {
		case <-w.ready:
			return s.releaser(), nil
		case <-ctx.Done():
			s.mu.Lock()
			granted := w.granted
			if !granted {
				s.queue = slices.DeleteFunc(s.queue, func(q *slotWaiter) bool { return q == w })
			}
			s.mu.Unlock()
			if granted {
				// Handed a slot just as the wait ended: pass it on.
				s.releaser()()
			}
			return nil, ctx.Err()
		case <-ticker.C:
			if now := s.position(w); waiting != nil && worthReporting(ahead, now) {
				ahead = now
				waiting(ahead)
			}
		}
	}
}

// worthReporting says whether a waiter's place, now waiters ahead, is
// worth a report after one at last: once it halved, so that a wait costs
// a handful of reports however long the line (-1: it left the line).
func worthReporting(last, now int) bool {
	return now >= 0 && now < last && now <= last/2
}

// position is the number of waiters ahead of w, or -1 once it left the
// queue.
func (s *slots) position(w *slotWaiter) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Index(s.queue, w)
}

// releaser returns the function that gives one held slot back: to the
// first waiter, or to the pool when none waits.
func (s *slots) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.queue) > 0 {
				next := s.queue[0]
				s.queue = s.queue[1:]
				next.granted = true
				close(next.ready)
				return
			}
			s.held--
		})
	}
}

// load returns the slots held and the waiters, for tests and metrics.
func (s *slots) load() (held, waiting int) {
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held, len(s.queue)
}
