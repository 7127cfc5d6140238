package store

import "sync"

// maxPending bounds the events a subscriber may leave unread; past it the
// subscription is marked overflowed and its reader must start over.
const maxPending = 1 << 20

// Subscription receives every cache event after it was made, in order,
// without ever blocking the cache: events queue until drained.
type Subscription struct {
	cache      *Cache
	mu         sync.Mutex
	events     []Event
	overflowed bool
	ready      chan struct{}
}

// Subscribe starts a subscription; Unsubscribe ends it.
func (c *Cache) Subscribe() *Subscription {
	s := &Subscription{cache: c, ready: make(chan struct{}, 1)}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	return s
}

// Unsubscribe stops delivery to s.
func (c *Cache) Unsubscribe(s *Subscription) {
	c.mu.Lock()
	delete(c.subs, s)
	c.mu.Unlock()
}

func (s *Subscription) push(events ...Event) {
	if len(events) == 0 {
		return
	}
	s.mu.Lock()
	if len(s.events)+len(events) > maxPending {
		s.events = nil
		s.overflowed = true
	} else {
		s.events = append(s.events, events...)
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready receives a value when events may be waiting.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Drain returns the events queued so far. overflowed means events were lost
// because the reader fell too far behind: it must re-read the cache whole.
func (s *Subscription) Drain() (events []Event, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events, overflowed = s.events, s.overflowed
	s.events, s.overflowed = nil, false
	return events, overflowed
}
