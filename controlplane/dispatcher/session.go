package dispatcher

import (
	"context"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// session is one connected agent's outgoing queue. Changes queue without
// blocking the router and leave as one Assignments message per send.
type session struct {
	nodeID string
	// term is the leadership term the session was taken in.
	term   context.Context
	cancel context.CancelFunc

	// overlay: the node joins the cluster's networks and gets the
	// network map. Set before the session is registered.
	overlay bool

	mu      sync.Mutex
	full    bool
	tasks   map[string]*berthv1.Task
	removed map[string]bool
	net     netQueue
	ready   chan struct{}

	// alive is signalled on every message from the agent; silent is set
	// when the session ended because none came.
	alive  chan struct{}
	silent atomic.Bool
	// lastHeard is when the agent last sent anything (unix nanoseconds).
	lastHeard atomic.Int64

	// control are messages about the node's certificate and trust, sent
	// before anything else; under mu.
	control []*berthv1.ServerMessage
	// cert is the node's certificate: the one it connected with, or the
	// one it last renewed to.
	cert atomic.Pointer[x509.Certificate]
}

// certificate is the node's certificate now.
func (s *session) certificate() *x509.Certificate { return s.cert.Load() }

func (s *session) setCertificate(c *x509.Certificate) {
	if c != nil {
		s.cert.Store(c)
	}
}

// queueControl queues a certificate or trust message.
func (s *session) queueControl(m *berthv1.ServerMessage) {
	s.mu.Lock()
	s.control = append(s.control, m)
	s.mu.Unlock()
	s.signal()
}

func (s *session) takeControl() []*berthv1.ServerMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.control
	s.control = nil
	return c
}

func newSession(nodeID string, term context.Context, cancel context.CancelFunc) *session {
	return &session{
		nodeID:  nodeID,
		term:    term,
		cancel:  cancel,
		tasks:   map[string]*berthv1.Task{},
		removed: map[string]bool{},
		ready:   make(chan struct{}, 1),
		alive:   make(chan struct{}, 1),
	}
}

// heard notes a message from the agent.
func (s *session) heard() {
	s.lastHeard.Store(time.Now().UnixNano())
	select {
	case s.alive <- struct{}{}:
	default:
	}
}

func (s *session) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// queue adds one change: a task to run or update, or a task id to forget.
func (s *session) queue(t *berthv1.Task, removed string) {
	s.mu.Lock()
	if t != nil {
		id := t.GetMeta().GetId()
		s.tasks[id] = t
		delete(s.removed, id)
	}
	if removed != "" {
		delete(s.tasks, removed)
		s.removed[removed] = true
	}
	s.mu.Unlock()
	s.signal()
}

// queueFull replaces whatever is queued with the node's whole task set.
func (s *session) queueFull(tasks []*berthv1.Task) {
	s.mu.Lock()
	s.full = true
	s.tasks = make(map[string]*berthv1.Task, len(tasks))
	for _, t := range tasks {
		s.tasks[t.GetMeta().GetId()] = t
	}
	s.removed = map[string]bool{}
	s.mu.Unlock()
	s.signal()
}

// queueNetwork adds one change of the network map.
func (s *session) queueNetwork(c netChange) {
	s.mu.Lock()
	s.net.queue(c)
	s.mu.Unlock()
	s.signal()
}

// queueFullNetwork replaces the queued changes of the network map with the
// whole map m, which sessions may share: it is only read.
func (s *session) queueFullNetwork(m *berthv1.NetworkMap) {
	s.mu.Lock()
	s.net.queueFull(m)
	s.mu.Unlock()
	s.signal()
}

func (s *session) takeNetwork() *berthv1.NetworkMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.net.take()
}

func (s *session) take() *berthv1.Assignments {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full && len(s.tasks) == 0 && len(s.removed) == 0 {
		return nil
	}
	a := &berthv1.Assignments{Full: s.full}
	for _, t := range s.tasks {
		// The cache's objects are never modified, and marshalling only
		// reads them (safe from many goroutines at once): the message
		// carries them as they are, not a copy of each task and its spec.
		a.Tasks = append(a.Tasks, t)
	}
	for id := range s.removed {
		a.Removed = append(a.Removed, id)
	}
	s.full = false
	s.tasks = map[string]*berthv1.Task{}
	s.removed = map[string]bool{}
	return a
}

// sendLoop sends queued changes until ctx ends; decorate adds to each
// message what it needs beside the tasks (their image sources).
func (s *session) sendLoop(ctx context.Context, stream berthv1.AgentService_SessionServer, decorate func(*berthv1.Assignments)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ready:
		}
		for _, m := range s.takeControl() {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		// The network map first: a task leaves the other nodes' view
		// before its own node is told to stop it.
		if m := s.takeNetwork(); m != nil {
			if err := stream.Send(&berthv1.ServerMessage{Message: &berthv1.ServerMessage_NetworkMap{NetworkMap: m}}); err != nil {
				return err
			}
		}
		a := s.take()
		if a == nil {
			continue
		}
		if decorate != nil {
			decorate(a)
		}
		if err := stream.Send(&berthv1.ServerMessage{Message: &berthv1.ServerMessage_Assignments{Assignments: a}}); err != nil {
			return err
		}
	}
}
