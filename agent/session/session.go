package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
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
	// NetworkMap hands over the cluster's network map, or a change to it.
	NetworkMap(*berthv1.NetworkMap)
}

// Config says where and how to connect.
type Config struct {
	// Servers are control plane servers' addresses; the session finds
	// the leader among them and learns the others from it.
	Servers []string
	// ServersFile keeps the servers learnt, for the next start; "" keeps
	// none.
	ServersFile string
	Credentials *Credentials
	// Live holds the certificate and trust bundle in use (made from
	// Credentials); the session renews them and the agent's listeners
	// read them.
	Live *identity.Live
	// PKIDir is where Credentials are kept; renewals replace them there.
	PKIDir  string
	Handler Handler
	Log     *slog.Logger
}

// Session keeps the agent's stream to the control plane.
type Session struct {
	cfg     Config
	servers *servers
	certs   *certs

	mu        sync.Mutex
	reports   []*berthv1.TaskStatusReport
	images    []string
	digests   map[string]string
	imagesSet bool
	// conditions are the node's checks, queued for the next heartbeat
	// while conditionsSet.
	conditions    []*berthv1.NodeCondition
	conditionsSet bool
	ready         chan struct{}
	connected     chan struct{}
	// down says why no session is up now; nil while one is.
	down error
}

// New returns a session; Run connects it.
func New(cfg Config) *Session {
	return &Session{
		cfg: cfg, servers: newServers(cfg.Servers, cfg.ServersFile),
		certs: &certs{live: cfg.Live, dir: cfg.PKIDir, nodeID: cfg.Credentials.NodeID, log: cfg.Log},
		ready: make(chan struct{}, 1), connected: make(chan struct{}),
		down: errors.New("not connected yet"),
	}
}

// Up says whether a session with the control plane is up now: nil when
// it is, or why not.
func (s *Session) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

func (s *Session) setDown(err error) {
	s.mu.Lock()
	s.down = err
	s.mu.Unlock()
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

// ConditionsChanged queues the node's conditions (all of them) for a
// heartbeat sent at once: a node that cannot run containers should stop
// getting tasks without waiting for the next tick.
func (s *Session) ConditionsChanged(conds []*berthv1.NodeCondition) {
	s.mu.Lock()
	s.conditions, s.conditionsSet = conds, true
	s.mu.Unlock()
	s.signal()
}

func (s *Session) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Run keeps a session with the leader open until ctx ends, reconnecting
// with backoff, and following the other servers to the leader.
func (s *Session) Run(ctx context.Context) error {
	if len(s.servers.addrs) == 0 {
		return fmt.Errorf("no control plane server to connect to: pass --join")
	}
	// The configuration reads the certificate and trust bundle in use at
	// each handshake: renewals reach new connections.
	tlsCfg := s.cfg.Live.ClientTLS("")
	conns := map[string]*grpc.ClientConn{}
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	dial := func(addr string) (berthv1.AgentServiceClient, error) {
		conn, ok := conns[addr]
		if !ok {
			var err error
			conn, err = grpc.NewClient(addr,
				grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
				grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
				// A server coming back is tried again soon, not after
				// gRPC's default backoff of up to two minutes.
				grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
					BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second,
				}, MinConnectTimeout: 20 * time.Second}),
			)
			if err != nil {
				return nil, fmt.Errorf("control plane at %s: %w", addr, err)
			}
			conns[addr] = conn
		}
		return berthv1.NewAgentServiceClient(conn), nil
	}
	wait := 100 * time.Millisecond
	var skewWait time.Duration
	redirects := 0
	var once sync.Once
	for ctx.Err() == nil {
		started := time.Now()
		addr := s.servers.target()
		client, err := dial(addr)
		if err == nil {
			err = s.run(ctx, addr, client, func() {
				s.setDown(nil)
				once.Do(func() { close(s.connected) })
			})
		}
		why := err
		if why == nil {
			why = errors.New("closed")
		}
		s.setDown(fmt.Errorf("session with %s ended: %w", addr, why))
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > 10*time.Second {
			wait = 100 * time.Millisecond
		}
		leader := leaderNamed(err)
		if leader != "" {
			redirects++
		} else {
			redirects = 0
		}
		delay := retryDelay(err, redirects, wait, s.servers.several())
		if leader != "" {
			s.cfg.Log.Info("following the control plane's leader", "server", addr, "leader", leader)
			s.servers.follow(leader)
		} else if certificateRefused(err) {
			s.cfg.Log.Error("the control plane refused this node's certificate: it was revoked (berth node rm) or no CA of the cluster signed it; "+
				"if the node was removed, join it again with a fresh --data-dir; reconnecting", "server", addr, "err", err, "in", delay)
			s.servers.failed(addr)
			wait = min(wait*2, 5*time.Second)
		} else if versionRefused(err) {
			skewWait = nextSkewWait(skewWait)
			delay = skewWait
			s.cfg.Log.Error("the control plane refused this agent's version: upgrade the agent or the servers as the error says; trying again", "server", addr, "err", err, "in", delay)
		} else {
			s.cfg.Log.Warn("session with the control plane ended; reconnecting", "server", addr, "err", err, "in", delay)
			s.servers.failed(addr)
			wait = min(wait*2, 5*time.Second)
		}
		if delay == 0 {
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

func (s *Session) run(ctx context.Context, server string, client berthv1.AgentServiceClient, onConnect func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Session(sctx)
	if err != nil {
		return err
	}
	// The leader sends its headers first; another server ends the stream
	// at once, naming the leader, before the hello (every task's status)
	// is sent for nothing.
	header, err := stream.Header()
	if err != nil {
		return refusal(server, err, stream.Trailer())
	}
	if header == nil {
		_, err := stream.Recv()
		return refusal(server, err, stream.Trailer())
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
		return refusal(server, err, stream.Trailer())
	}
	welcome := msg.GetWelcome()
	if welcome == nil {
		return fmt.Errorf("the control plane did not welcome this node")
	}
	if err := s.servers.learn(welcome.GetServers()); err != nil {
		s.cfg.Log.Warn("keeping the control plane's server list", "err", err)
	}
	defer s.certs.lost()
	renewNow, err := s.certs.trust(welcome.GetTrust())
	if err != nil {
		s.cfg.Log.Warn("keeping the CA trust bundle", "err", err)
	}
	s.cfg.Handler.Welcome(welcome)
	onConnect()
	s.cfg.Log.Info("connected to the control plane", "server", server, "node", welcome.NodeId)
	period := welcome.GetHeartbeatPeriod().AsDuration()
	if period <= 0 {
		period = 2 * time.Second
	}
	errc := make(chan error, 1)
	// Certificate messages go to this loop, which owns the renewal.
	certMsgs := make(chan *berthv1.ServerMessage, 1)
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
			if m := msg.GetNetworkMap(); m != nil {
				s.cfg.Handler.NetworkMap(m)
			}
			if msg.GetCertificate() != nil || msg.GetTrust() != nil {
				select {
				case certMsgs <- msg:
				case <-sctx.Done():
					return
				}
			}
		}
	}()
	tick := time.NewTicker(period)
	defer tick.Stop()
	renewal := time.NewTimer(s.certs.due(time.Now()))
	defer renewal.Stop()
	if renewNow {
		renewal.Reset(0)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-renewal.C:
			if err := s.requestRenewal(stream); err != nil {
				return err
			}
		case msg := <-certMsgs:
			renewNow := false
			if c := msg.GetCertificate(); c != nil {
				if err := s.certs.renewed(c, time.Now()); err != nil {
					s.cfg.Log.Warn("renewing the node certificate", "err", err, "retry in", s.certs.due(time.Now()))
				}
			}
			if t := msg.GetTrust(); t != nil {
				var err error
				if renewNow, err = s.certs.trust(t); err != nil {
					s.cfg.Log.Warn("keeping the CA trust bundle", "err", err)
				}
			}
			renewal.Stop()
			if renewNow {
				renewal.Reset(0)
			} else {
				renewal.Reset(max(0, s.certs.due(time.Now())))
			}
		case <-tick.C:
			if err := stream.Send(s.heartbeat()); err != nil {
				return err
			}
		case <-s.ready:
			if err := s.flush(stream); err != nil {
				return err
			}
			// New images go out at once, not at the next tick: peers
			// waiting for an image learn sooner where it is. So do
			// changed conditions.
			if s.heartbeatPending() {
				if err := stream.Send(s.heartbeat()); err != nil {
					return err
				}
			}
		}
	}
}

// requestRenewal sends a certificate renewal request, unless one is in
// flight; its answer resets the timer.
func (s *Session) requestRenewal(stream berthv1.AgentService_SessionClient) error {
	msg, err := s.certs.request()
	if err != nil {
		s.cfg.Log.Warn("making a key to renew the node certificate", "err", err)
		return nil
	}
	if msg == nil {
		return nil
	}
	return stream.Send(msg)
}

func (s *Session) heartbeatPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imagesSet || s.conditionsSet
}

func (s *Session) heartbeat() *berthv1.AgentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	hb := &berthv1.AgentHeartbeat{}
	if s.imagesSet {
		hb.Images, hb.ImageDigests, hb.ImagesChanged = s.images, s.digests, true
		s.imagesSet = false
	}
	if s.conditionsSet {
		hb.Conditions, hb.ConditionsChanged = s.conditions, true
		s.conditionsSet = false
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

// certificateRefused reports whether a server's TLS handshake refused the
// node's certificate. Servers refuse revoked certificates at the
// handshake, where TLS can only say "bad certificate".
func certificateRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "tls: bad certificate")
}
