package session

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Handler is the agent side of a session.
type Handler interface {
	// Hello describes the node and the tasks it knows, at each connect.
	Hello() *berthv1.AgentHello
	// Welcome tells the node its id and settings.
	Welcome(*berthv1.SessionWelcome)
	// Assign hands over assignments.
	Assign(*berthv1.Assignments)
}

// Config says where and how to connect.
type Config struct {
	Server      string
	Credentials *Credentials
	Handler     Handler
	Log         *slog.Logger
}

// Session keeps the agent's stream to the control plane.
type Session struct {
	cfg Config

	mu        sync.Mutex
	reports   []*berthv1.TaskStatusReport
	images    []string
	digests   map[string]string
	imagesSet bool
	ready     chan struct{}
	connected chan struct{}
}

// New returns a session; Run connects it.
func New(cfg Config) *Session {
	return &Session{cfg: cfg, ready: make(chan struct{}, 1), connected: make(chan struct{})}
}

// Connected is closed once the first session is established.
func (s *Session) Connected() <-chan struct{} { return s.connected }

// Report queues a task status for the control plane.
func (s *Session) Report(taskID string, st *berthv1.TaskStatus) {
	s.mu.Lock()
	s.reports = append(s.reports, &berthv1.TaskStatusReport{TaskId: taskID, Status: st})
	s.mu.Unlock()
	s.signal()
}

// ImagesChanged queues the node's new image list for the next heartbeat.
func (s *Session) ImagesChanged(images []string) {
	s.ImagesChangedWithDigests(images, nil)
}

// ImagesChangedWithDigests queues the node's new image list, and the
// manifest digest of each image (by name), for the next heartbeat.
func (s *Session) ImagesChangedWithDigests(images []string, digests map[string]string) {
	s.mu.Lock()
	s.images, s.digests, s.imagesSet = images, digests, true
	s.mu.Unlock()
	s.signal()
}

func (s *Session) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Run keeps a session open until ctx ends, reconnecting with backoff.
func (s *Session) Run(ctx context.Context) error {
	c := s.cfg.Credentials
	tlsCfg, err := identity.ClientTLS(c.Cert, c.Key, c.CA, "")
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(s.cfg.Server,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", s.cfg.Server, err)
	}
	defer conn.Close()
	client := berthv1.NewAgentServiceClient(conn)
	backoff := 100 * time.Millisecond
	var once sync.Once
	for ctx.Err() == nil {
		started := time.Now()
		err := s.run(ctx, client, func() { once.Do(func() { close(s.connected) }) })
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		s.cfg.Log.Warn("session with the control plane ended; reconnecting", "server", s.cfg.Server, "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

func (s *Session) run(ctx context.Context, client berthv1.AgentServiceClient, onConnect func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Session(sctx)
	if err != nil {
		return err
	}
	// The hello carries every task's latest status, so what was queued for
	// a broken session is already in it.
	s.mu.Lock()
	s.reports = nil
	s.mu.Unlock()
	if err := stream.Send(&berthv1.AgentMessage{Message: &berthv1.AgentMessage_Hello{Hello: s.cfg.Handler.Hello()}}); err != nil {
		return err
	}
	msg, err := stream.Recv()
	if err != nil {
		return err
	}
	welcome := msg.GetWelcome()
	if welcome == nil {
		return fmt.Errorf("the control plane did not welcome this node")
	}
	s.cfg.Handler.Welcome(welcome)
	onConnect()
	s.cfg.Log.Info("connected to the control plane", "server", s.cfg.Server, "node", welcome.NodeId)
	period := welcome.GetHeartbeatPeriod().AsDuration()
	if period <= 0 {
		period = 2 * time.Second
	}
	errc := make(chan error, 1)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			if a := msg.GetAssignments(); a != nil {
				s.cfg.Handler.Assign(a)
			}
		}
	}()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-tick.C:
			if err := stream.Send(s.heartbeat()); err != nil {
				return err
			}
		case <-s.ready:
			if err := s.flush(stream); err != nil {
				return err
			}
			// New images go out at once, not at the next tick: peers
			// waiting for an image learn sooner where it is.
			if s.imagesPending() {
				if err := stream.Send(s.heartbeat()); err != nil {
					return err
				}
			}
		}
	}
}

func (s *Session) imagesPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imagesSet
}

func (s *Session) heartbeat() *berthv1.AgentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	hb := &berthv1.AgentHeartbeat{}
	if s.imagesSet {
		hb.Images, hb.ImageDigests, hb.ImagesChanged = s.images, s.digests, true
		s.imagesSet = false
	}
	return &berthv1.AgentMessage{Message: &berthv1.AgentMessage_Heartbeat{Heartbeat: hb}}
}

// flush sends queued reports in one message.
func (s *Session) flush(stream berthv1.AgentService_SessionClient) error {
	s.mu.Lock()
	reports := s.reports
	s.reports = nil
	s.mu.Unlock()
	if len(reports) == 0 {
		return nil
	}
	return stream.Send(&berthv1.AgentMessage{Message: &berthv1.AgentMessage_Status{Status: &berthv1.AgentStatus{Tasks: reports}}})
}
