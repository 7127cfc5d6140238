// Package dispatcher serves the agents: it admits new nodes (Join), keeps
// one session stream per connected agent, sends each node the tasks
// assigned to it as they change, and writes the agents' status reports to
// the store in batches.
package dispatcher

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
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config holds what the dispatcher needs.
type Config struct {
	Store     *store.Store
	Cache     *store.Cache
	Authority *ca.Authority
	Log       *slog.Logger
	// HeartbeatPeriod is how often agents report that they are alive.
	HeartbeatPeriod time.Duration
	// Subnets hands out container subnets to nodes.
	Subnets *SubnetPool
	// Gossip tells agents how to join the cluster's gossip; nil leaves
	// them out of it.
	Gossip *berthv1.GossipConfig
	// ImageAuth returns the credential (username, secret, insecure) of
	// the registry of an image, or nil; it fills in the image sources
	// sent with assignments. Nil sends none.
	ImageAuth func(image string) *berthv1.ImageSource
	// ImageTrust returns the trust policy that covers an image in a
	// namespace, with its keys, or nil; it fills in the image trust sent
	// with assignments. Nil sends none.
	ImageTrust func(namespace, image string) *berthv1.ImageTrust
	// KEK opens the secrets sent with assignments; nil sends none.
	KEK *seal.Key
	// Leader returns the address of the server that leads, where agents
	// that reach another server are sent; nil or "" sends them nowhere.
	Leader func() string
	// Servers lists every server, for the agents to fall back on and to
	// seed their gossip with; nil tells agents of none.
	Servers func(context.Context) ([]*berthv1.ServerInfo, error)
	// Version is the server's version, which agents' versions may be
	// at most one minor version from; "" is this build's.
	Version string
}

// DefaultHeartbeatPeriod is how often agents report that they are alive.
const DefaultHeartbeatPeriod = 2 * time.Second

// silentHeartbeats is how many heartbeat periods a session may stay
// silent before it is taken for lost: a cut link or a frozen machine
// closes no connection.
const silentHeartbeats = 3

// Dispatcher implements berthv1.AgentServiceServer.
type Dispatcher struct {
	berthv1.UnimplementedAgentServiceServer
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session
	// overlay are the sessions that get the network map, by node; a
	// subset of sessions.
	overlay map[string]*session
	// netMu orders the network map's changes with the full maps of new
	// sessions.
	netMu sync.Mutex
	// term is the context of the leadership term Run serves, nil while
	// this server does not lead: sessions are only taken in a term, and
	// their writes carry its fence.
	term context.Context

	// claims are what each node's agent last said of it that differs
	// from what it joined with (reportClaims), by node id.
	claims map[string]string

	reports *reportQueue
	beats   *heartbeats
	// peerIndex says which nodes hold which images, for image sources.
	peerIndex peerIndexCache
}

// New returns a dispatcher; Run must run for sessions to get updates.
func New(cfg Config) *Dispatcher {
	if cfg.HeartbeatPeriod <= 0 {
		cfg.HeartbeatPeriod = DefaultHeartbeatPeriod
	}
	return &Dispatcher{
		cfg:      cfg,
		log:      cfg.Log,
		sessions: map[string]*session{},
		reports:  newReportQueue(),
		beats:    newHeartbeats(),
	}
}

// Run serves agents for one leadership term: it takes sessions, routes
// task changes to them and writes their status reports until ctx ends,
// then closes every session so the agents go to the next leader. ctx
// carries the term's fence (store.WithFence).
func (d *Dispatcher) Run(ctx context.Context) error {
	sub := d.cfg.Cache.Subscribe()
	defer d.cfg.Cache.Unsubscribe(sub)
	d.startTerm(ctx)
	defer d.endTerm()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); d.writeReports(ctx) }()
	go func() { defer wg.Done(); d.writeHeartbeats(ctx) }()
	go func() { defer wg.Done(); d.awaitReconnects(ctx) }()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Ready():
		}
		events, overflowed := sub.Drain()
		if overflowed {
			d.peerIndex.invalidate()
			d.resyncNetworkMaps()
			d.resyncAll()
			continue
		}
		for _, ev := range events {
			d.routeEvent(ev)
		}
	}
}

// routeEvent sends what one cache event changes to the sessions.
func (d *Dispatcher) routeEvent(ev store.Event) {
	switch ev.Kind {
	case store.KindResync:
		d.peerIndex.invalidate()
		d.resyncNetworkMaps()
		d.resyncAll()
	case store.KindTask:
		// The map's change first: see netmap.go.
		d.routeNetwork(ev)
		d.route(ev)
	case store.KindNode:
		if peersChanged(ev) {
			d.peerIndex.invalidate()
		}
		d.routeNetwork(ev)
		d.nodeChanged(ev)
	case store.KindService, store.KindNetwork:
		d.routeNetwork(ev)
	}
}

// route sends a task change to the session of every node it concerns.
func (d *Dispatcher) route(ev store.Event) {
	t := ev.Object.(*berthv1.Task)
	var old *berthv1.Task
	if ev.Old != nil {
		old = ev.Old.(*berthv1.Task)
	}
	if old != nil && old.NodeId != "" && old.NodeId != t.NodeId {
		d.send(old.NodeId, nil, old.GetMeta().GetId())
	}
	if t.NodeId == "" || t.GetStatus().GetState() < berthv1.TaskState_TASK_STATE_ASSIGNED {
		return
	}
	if ev.Action == store.ActionDelete {
		d.send(t.NodeId, nil, t.GetMeta().GetId())
		return
	}
	// Status the agent itself reported needs no echo: only what the agent
	// must act on is sent.
	if old != nil && old.NodeId == t.NodeId && old.DesiredState == t.DesiredState &&
		old.SpecVersion == t.SpecVersion && old.GetStatus().GetState() >= berthv1.TaskState_TASK_STATE_ASSIGNED {
		return
	}
	d.send(t.NodeId, t, "")
}

// nodeChanged ends the session of a node declared down: its tasks are
// being replaced, and the agent must connect again to be ready. It also
// ends the session of a node removed (`berth node rm --force`), whose
// agent cannot connect again.
func (d *Dispatcher) nodeChanged(ev store.Event) {
	n, ok := ev.Object.(*berthv1.Node)
	if !ok {
		return
	}
	why := "closing the session of a node declared down"
	if ev.Action == store.ActionDelete {
		why = "closing the session of a node removed from the cluster"
		d.mu.Lock()
		delete(d.claims, n.GetMeta().GetId())
		d.mu.Unlock()
	} else if n.Status != berthv1.NodeStatus_NODE_STATUS_DOWN {
		return
	} else if old, ok := ev.Old.(*berthv1.Node); ok && old.Status == berthv1.NodeStatus_NODE_STATUS_DOWN {
		return
	}
	d.mu.Lock()
	s := d.sessions[n.GetMeta().GetId()]
	d.mu.Unlock()
	if s != nil {
		d.log.Warn(why, "node", n.Name, "why", n.StatusMessage)
		s.cancel()
	}
}

// reportClaims warns of, and records as events, what an agent's hello
// says of its node that differs from what the node fixed at join, once
// per node and set of claims: an agent that keeps saying it is another
// node would otherwise record an event at every reconnect. Only the last
// set is remembered per node, so an agent varying its claims costs no
// memory.
func (d *Dispatcher) reportClaims(id, name string, claims []string) {
	said := strings.Join(claims, "\n")
	d.mu.Lock()
	fresh := d.claims[id] != said
	if fresh {
		if d.claims == nil {
			d.claims = map[string]string{}
		}
		d.claims[id] = said
	}
	d.mu.Unlock()
	if !fresh {
		return
	}
	for _, c := range claims {
		d.log.Warn("an agent's hello differs from what its node joined with; ignored", "node", name, "id", id, "claim", c)
		d.cfg.Store.Record(context.Background(), d.log, store.EventKindNode, id, "identity-claim", c)
	}
}

func (d *Dispatcher) send(nodeID string, t *berthv1.Task, removed string) {
	d.mu.Lock()
	s := d.sessions[nodeID]
	d.mu.Unlock()
	if s != nil {
		s.queue(t, removed)
	}
}

func (d *Dispatcher) resyncAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, s := range d.sessions {
		s.queueFull(d.assigned(id))
	}
}

// assigned is the set of tasks node id must know of.
func (d *Dispatcher) assigned(nodeID string) []*berthv1.Task {
	var out []*berthv1.Task
	for _, t := range d.cfg.Cache.NodeTasks(nodeID) {
		if t.GetStatus().GetState() >= berthv1.TaskState_TASK_STATE_ASSIGNED {
			out = append(out, t)
		}
	}
	return out
}

// connected reports whether node nodeID's agent has a session. A server
// that does not lead holds no sessions and goes by the node's status.
func (d *Dispatcher) connected(nodeID string) bool {
	d.mu.Lock()
	_, ok := d.sessions[nodeID]
	leading := d.term != nil
	d.mu.Unlock()
	if ok || leading {
		return ok
	}
	n, known := d.cfg.Cache.Node(nodeID)
	return known && n.Status == berthv1.NodeStatus_NODE_STATUS_READY
}

// Session runs one agent's stream.
func (d *Dispatcher) Session(stream berthv1.AgentService_SessionServer) error {
	ctx := stream.Context()
	who, ok := identity.FromContext(ctx)
	if !ok || who.Role != identity.RoleNode {
		return status.Error(codes.PermissionDenied, "sessions need a node certificate: join the cluster first")
	}
	// Only the leader takes sessions. It answers with its headers first;
	// another server ends the stream at once, naming the leader, so the
	// agent does not send its hello for nothing.
	term := d.currentTerm()
	if term == nil {
		return d.notLeader(stream)
	}
	cert, ok := identity.PeerCertificate(ctx)
	if !ok {
		return status.Error(codes.PermissionDenied, "sessions need a node certificate: join the cluster first")
	}
	if err := d.refuseRevoked(ctx, cert); err != nil {
		return err
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "a session must start with hello")
	}
	if err := d.refuseSkew(who.ID, hello.GetDescription()); err != nil {
		return err
	}
	node, claims, err := d.register(fenced(ctx, term), who.ID, cert, hello.GetDescription())
	switch {
	case errors.Is(err, store.ErrFenced):
		return d.notLeader(stream)
	case errors.Is(err, errNotMember), errors.Is(err, errOtherCertificate):
		d.log.Warn("refused a session", "id", who.ID, "serial", identity.SerialHex(cert), "err", err)
		return status.Errorf(codes.PermissionDenied, "%v: this agent's certificate no longer names a node of the cluster; delete its data directory's pki folder and join again with a token", err)
	case err != nil:
		return status.Errorf(codes.Internal, "registering node: %v", err)
	}
	d.reportClaims(who.ID, node.Name, claims)
	d.reports.add(who.ID, hello.GetTasks())
	leaf, _ := identity.PeerCertificate(ctx)
	d.noteSessionCertificate(fenced(ctx, term), who.ID, leaf)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := newSession(who.ID, term, cancel)
	s.setCertificate(leaf)
	s.overlay = hello.GetDescription().GetOverlay()
	s.heard()
	d.mu.Lock()
	if d.term != term {
		// The term ended while the node registered.
		d.mu.Unlock()
		return d.notLeader(stream)
	}
	if prev := d.sessions[who.ID]; prev != nil {
		prev.cancel()
		delete(d.overlay, who.ID)
	}
	d.sessions[who.ID] = s
	if s.overlay {
		if d.overlay == nil {
			d.overlay = map[string]*session{}
		}
		d.overlay[who.ID] = s
	}
	d.mu.Unlock()
	defer d.unregister(s)

	welcome := &berthv1.SessionWelcome{
		NodeId:          who.ID,
		Subnet:          node.Subnet,
		HeartbeatPeriod: durationpb.New(d.cfg.HeartbeatPeriod),
		Trust:           d.trustFor(leaf),
	}
	if d.cfg.Subnets != nil {
		welcome.ContainerRange = d.cfg.Subnets.Range().String()
	}
	welcome.Servers, welcome.Gossip = d.servers(ctx)
	if err := stream.Send(&berthv1.ServerMessage{Message: &berthv1.ServerMessage_Welcome{Welcome: welcome}}); err != nil {
		return err
	}
	if s.overlay {
		d.startNetworkMap(s)
	}
	s.queueFull(d.assigned(who.ID))
	d.log.Info("agent connected", "node", node.Name, "id", who.ID, "address", node.Address)
	d.cfg.Store.Record(ctx, d.log, "node", who.ID, "connect", "agent of "+node.Name+" connected from "+node.Address)

	errc := make(chan error, 1)
	go func() { errc <- d.receive(sctx, s, stream) }()
	go d.watch(sctx, s, node.Name)
	files := newFileTracker()
	sendErr := s.sendLoop(sctx, stream, func(a *berthv1.Assignments) {
		d.withImageSources(who.ID, a)
		d.withFiles(files, a)
		withLogDefaults(d.cfg.Cache.Settings(), a)
	})
	cancel()
	var recvErr error
	select {
	case recvErr = <-errc:
	default:
		// The receiver may be blocked on a silent connection; returning
		// ends the stream, which releases it.
	}
	if errors.Is(sendErr, context.Canceled) {
		sendErr = nil
	}
	d.log.Info("agent disconnected", "node", node.Name, "id", who.ID, "err", errors.Join(sendErr, recvErr))
	d.cfg.Store.Record(ctx, d.log, "node", who.ID, "disconnect", "agent of "+node.Name+" disconnected")
	return sendErr
}

func (d *Dispatcher) receive(ctx context.Context, s *session, stream berthv1.AgentService_SessionServer) error {
	nodeID := s.nodeID
	for {
		msg, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.heard()
		switch m := msg.Message.(type) {
		case *berthv1.AgentMessage_Status:
			d.reports.add(nodeID, m.Status.GetTasks())
		case *berthv1.AgentMessage_Heartbeat:
			d.beats.heartbeat(nodeID, m.Heartbeat)
		case *berthv1.AgentMessage_RenewCertificate:
			d.renew(ctx, s, m.RenewCertificate)
		}
	}
}

// watch ends s when its agent has been silent for silentHeartbeats
// heartbeat periods.
func (d *Dispatcher) watch(ctx context.Context, s *session, name string) {
	limit := silentHeartbeats * d.cfg.HeartbeatPeriod
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.alive:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(limit)
		case <-timer.C:
			d.log.Warn("agent silent; closing its session", "node", name, "id", s.nodeID, "silent for", limit)
			s.silent.Store(true)
			s.cancel()
			return
		}
	}
}

// unregister ends s and marks its node unreachable, unless a newer session
// of the same node took over.
func (d *Dispatcher) unregister(s *session) {
	d.mu.Lock()
	current := d.sessions[s.nodeID] == s
	if current {
		delete(d.sessions, s.nodeID)
		delete(d.overlay, s.nodeID)
	}
	d.mu.Unlock()
	if !current || s.term.Err() != nil {
		// A newer session took over, or the term ended: the next
		// leader judges the node.
		return
	}
	ctx, cancel := context.WithTimeout(fenced(context.Background(), s.term), 10*time.Second)
	defer cancel()
	// A closed connection means the node's machine answered: its agent
	// ended, and most likely restarts. Silence means the machine or the
	// network to it is gone.
	why, loss := "the agent closed its session", berthv1.ContactLoss_CONTACT_LOSS_CLOSED
	if s.silent.Load() {
		why, loss = fmt.Sprintf("no heartbeat for %s", silentHeartbeats*d.cfg.HeartbeatPeriod), berthv1.ContactLoss_CONTACT_LOSS_SILENT
	}
	if err := d.markUnreachable(ctx, why, loss, map[string]time.Time{s.nodeID: time.Unix(0, s.lastHeard.Load())}); err != nil {
		d.log.Warn("marking node unreachable", "id", s.nodeID, "err", err)
	}
}

// markUnreachable makes the ready nodes among heard's keys unreachable for
// reason why (lost how), in as few transactions as etcd allows, recording as their
// last heartbeat when their agent was last heard (a zero time leaves it).
// A node that is not ready stays as it is: one declared down stays down
// until its agent is back.
func (d *Dispatcher) markUnreachable(ctx context.Context, why string, loss berthv1.ContactLoss, heard map[string]time.Time) error {
	var changes []store.Change
	for id, at := range heard {
		n, ok := d.cfg.Cache.Node(id)
		if !ok {
			continue
		}
		changes = append(changes, store.Change{Key: store.NodeKey(id), Current: n, Apply: func(o store.Object) bool {
			n := o.(*berthv1.Node)
			if n.Status != berthv1.NodeStatus_NODE_STATUS_READY {
				return false
			}
			n.Status, n.StatusMessage, n.StatusSince = berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, why, timestamppb.Now()
			n.ContactLoss = loss
			if !at.IsZero() {
				n.LastHeartbeat = timestamppb.New(at)
			}
			return true
		}})
	}
	_, err := d.cfg.Store.Update(ctx, changes)
	return err
}

// writeReports writes queued status reports, many tasks per transaction,
// until ctx ends.
func (d *Dispatcher) writeReports(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.reports.ready:
		}
		batch := d.reports.take()
		if len(batch) == 0 {
			continue
		}
		if err := d.applyReports(ctx, batch); err != nil && ctx.Err() == nil {
			// Agents do not send a status twice: keep the batch, ahead of
			// what arrived since, and try again shortly.
			d.log.Warn("writing task status; retrying", "tasks", len(batch), "err", err)
			d.reports.requeue(batch)
			t := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

func (d *Dispatcher) applyReports(ctx context.Context, batch map[string]*pendingReports) error {
	defer d.noteStatusChanges(batch)()
	now := time.Now()
	changes := make([]store.Change, 0, len(batch))
	for id, p := range batch {
		t, ok := d.cfg.Cache.Task(id)
		if !ok || t.NodeId != p.nodeID {
			// A report for a task this node does not hold (deleted, or
			// moved away) changes nothing.
			continue
		}
		reports := p.statuses
		changes = append(changes, store.Change{
			Key:     store.TaskKey(t.Namespace, t.App, t.Service, id),
			Current: t,
			Apply: func(o store.Object) bool {
				t := o.(*berthv1.Task)
				changed := false
				for _, st := range reports {
					changed = taskstate.Advance(t, proto.Clone(st).(*berthv1.TaskStatus), now) || changed
				}
				return changed
			},
		})
	}
	rev, err := d.cfg.Store.Update(ctx, changes)
	if err != nil {
		return fmt.Errorf("%d task updates: %w", len(changes), err)
	}
	// The next batch reads the tasks from the cache: let it catch up with
	// this write first, or every batch would conflict with the one before
	// and pay a re-read.
	return d.cfg.Cache.WaitRevision(ctx, rev)
}
