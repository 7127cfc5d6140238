package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The event history says what happened to what, and why. Each event names
// an object (Kind, ObjectId), what happened to it (Action), a sentence for
// people (Message) and attributes for filters. Components record events
// with these values so that "berth events" and "berth describe" can find
// them:
//
//   - kind "node", object id the node id; actions "join", "connect",
//     "disconnect" (dispatcher), and the verdicts of node health: "ready",
//     "unreachable", "down", with the reason in the message; "update"
//     (apiserver: an operator changed its availability or labels).
//   - kind "task", object id the task id; actions "fail", "reject",
//     "health" (dispatcher, from the agents' reports), and "replace",
//     "restart-delayed", "restart-given-up" (orchestrator).
//   - kind "app", object id "namespace/app"; actions "apply", "remove".
//   - kind "service", object id "namespace/app/service"; actions "scale",
//     "rollback", "rebalance" (apiserver).
//   - kind "cluster", object id "settings"; action "update" (apiserver).
//
// Task events carry the attributes namespace, app, service, slot, task and
// node (the node id), and node_name and exit_code where they apply; app
// events carry namespace and app, service events those and service, and
// the apiserver's node "update" events node and node_name. Filters match
// on them.
const (
	EventKindNode    = "node"
	EventKindTask    = "task"
	EventKindApp     = "app"
	EventKindService = "service"
	EventKindCluster = "cluster"

	AttrNamespace = "namespace"
	AttrApp       = "app"
	AttrService   = "service"
	AttrSlot      = "slot"
	AttrTask      = "task"
	AttrNode      = "node"
	AttrNodeName  = "node_name"
	AttrExitCode  = "exit_code"
)

const (
	// eventTTL bounds the history: events live on a lease and etcd forgets
	// them when it expires.
	eventTTL = time.Hour
	// eventQueueLimit bounds the events waiting to be written; past it the
	// oldest are dropped. Events describe changes and are never worth
	// holding up the changes themselves or the memory of the server.
	eventQueueLimit = 8192
	// eventIDMemory is how many caller-given event ids are remembered to
	// drop repeats.
	eventIDMemory = 16384
	// eventGatherDelay is how long the writer gathers events before a
	// write: a failure, its replacement and the reports around it land in
	// one transaction, and the history's writes stay out of the way of
	// the writes that recover a service.
	eventGatherDelay = 200 * time.Millisecond
	// eventWriteTimeout bounds one batch's write.
	eventWriteTimeout = 5 * time.Second
	// eventReadPage is how many events one range request reads.
	eventReadPage = 1000
)

// eventRecorder queues events and writes them in batches. A writer
// goroutine runs only while the queue holds events: whatever arrives while
// one transaction is in flight goes out in the next, up to MaxTxnOps per
// transaction, so a burst of failures costs a few commits, not one each.
type eventRecorder struct {
	mu      sync.Mutex
	queue   []*berthv1.Event
	dropped int
	// idle is closed when no writer runs; a new writer makes a new one.
	idle    chan struct{}
	writing bool
	// hurry ends the writer's gathering: FlushEvents sends on it.
	hurry chan struct{}
	// seen and seenOrder remember recent caller-given ids (a ring).
	seen      map[string]struct{}
	seenOrder []string
	seenNext  int

	// The lease is used by the single writer only.
	lease        clientv3.LeaseID
	leaseExpires time.Time
}

// Record queues an event for the history and returns at once. It never
// fails: the history describes changes, it is never a reason to fail one.
// ctx and log go unused since writing moved behind a queue (a write that
// fails is logged by the store's writer); they keep callers unchanged.
func (s *Store) Record(ctx context.Context, log *slog.Logger, kind, objectID, action, message string) {
	s.RecordEvent(&berthv1.Event{Kind: kind, ObjectId: objectID, Action: action, Message: message})
}

// RecordEvent queues ev for the history and returns at once; ev must not
// be changed afterwards. An unset time is now. An event whose Meta.Id is
// set by the caller is recorded once: the same id again is dropped while
// the store remembers it, and is written to the same key after that. That
// lets a component that re-evaluates the same situation on every pass
// record it without repeating itself.
func (s *Store) RecordEvent(ev *berthv1.Event) {
	if ev.At == nil {
		ev.At = timestamppb.Now()
	}
	r := &s.events
	r.mu.Lock()
	defer r.mu.Unlock()
	if id := ev.GetMeta().GetId(); id != "" {
		if r.remember(id) {
			return
		}
	} else {
		ev.Meta = &berthv1.Meta{Id: NewID()}
	}
	if len(r.queue) >= eventQueueLimit {
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.dropped++
	}
	r.queue = append(r.queue, ev)
	if !r.writing {
		r.writing = true
		r.idle = make(chan struct{})
		if r.hurry == nil {
			r.hurry = make(chan struct{}, 1)
		}
		go s.writeEvents()
	}
}

// remember records id among the recent ones and reports whether it was
// there already. r.mu is held.
func (r *eventRecorder) remember(id string) bool {
	if _, ok := r.seen[id]; ok {
		return true
	}
	if r.seen == nil {
		r.seen = make(map[string]struct{}, eventIDMemory)
		r.seenOrder = make([]string, eventIDMemory)
	}
	if old := r.seenOrder[r.seenNext]; old != "" {
		delete(r.seen, old)
	}
	r.seenOrder[r.seenNext] = id
	r.seenNext = (r.seenNext + 1) % eventIDMemory
	r.seen[id] = struct{}{}
	return false
}

// FlushEvents waits until the events queued so far are written (or given
// up on). The server calls it when it stops, before it closes its etcd
// client.
func (s *Store) FlushEvents(ctx context.Context) error {
	r := &s.events
	for {
		r.mu.Lock()
		writing, idle := r.writing, r.idle
		if writing {
			select {
			case r.hurry <- struct{}{}:
			default:
			}
		}
		r.mu.Unlock()
		if !writing {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("flushing the event history: %w", ctx.Err())
		}
	}
}

// writeEvents writes queued events in batches until the queue is empty.
func (s *Store) writeEvents() {
	r := &s.events
	log := slog.Default().With("component", "events")
	gather := time.NewTimer(eventGatherDelay)
	defer gather.Stop()
	for {
		select {
		case <-gather.C:
		case <-r.hurry:
		case <-s.cli.Ctx().Done():
		}
		gather.Reset(eventGatherDelay)
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.writing = false
			close(r.idle)
			r.mu.Unlock()
			return
		}
		n := min(len(r.queue), MaxTxnOps)
		batch := make([]*berthv1.Event, n)
		copy(batch, r.queue)
		clear(r.queue[:n])
		r.queue = r.queue[n:]
		dropped := r.dropped
		r.dropped = 0
		r.mu.Unlock()

		if dropped > 0 {
			log.Warn("event history falling behind; dropped the oldest events", "dropped", dropped)
		}
		// The client's context ends when it is closed: a writer never
		// outlives the store's connection.
		ctx, cancel := context.WithTimeout(s.cli.Ctx(), eventWriteTimeout)
		err := s.putEvents(ctx, batch)
		cancel()
		if err != nil {
			log.Warn("writing events to the history; dropped them", "events", len(batch), "err", err)
		}
	}
}

// putEvents writes batch in one transaction, on the history's lease. Only
// the writer calls it.
func (s *Store) putEvents(ctx context.Context, batch []*berthv1.Event) error {
	r := &s.events
	if time.Until(r.leaseExpires) < eventTTL/2 {
		resp, err := s.cli.Grant(ctx, int64((eventTTL * 3 / 2).Seconds()))
		if err != nil {
			return fmt.Errorf("event lease: %w", err)
		}
		r.lease, r.leaseExpires = resp.ID, time.Now().Add(eventTTL*3/2)
	}
	ops := make([]clientv3.Op, 0, len(batch))
	for _, ev := range batch {
		b, err := proto.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", ev.GetMeta().GetId(), err)
		}
		ops = append(ops, clientv3.OpPut(eventKey(ev), string(b), clientv3.WithLease(r.lease)))
	}
	if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		// The lease may be gone (etcd restored, or revoked): take a new
		// one next time.
		r.leaseExpires = time.Time{}
		return fmt.Errorf("committing %d events: %w", len(batch), err)
	}
	return nil
}

// eventKey orders events by time; the id's hash keeps events of the same
// instant apart and gives a caller-given id the same key every time.
func eventKey(ev *berthv1.Event) string {
	h := fnv.New64a()
	h.Write([]byte(ev.GetMeta().GetId()))
	return fmt.Sprintf("%s%s-%016x", EventsPrefix, eventTimeKey(ev.GetAt().AsTime()), h.Sum64())
}

func eventTimeKey(t time.Time) string { return fmt.Sprintf("%020d", t.UnixNano()) }

// Events returns the newest limit events at or after since (all of them
// when since is zero) for which match (nil for all) holds, oldest first.
func (s *Store) Events(ctx context.Context, since time.Time, limit int, match func(*berthv1.Event) bool) ([]*berthv1.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	events, _, err := s.eventsAt(ctx, since, limit, match)
	return events, err
}

// eventsAt is Events, with the revision the history was read at; limit
// must be positive.
func (s *Store) eventsAt(ctx context.Context, since time.Time, limit int, match func(*berthv1.Event) bool) ([]*berthv1.Event, int64, error) {
	key := EventsPrefix
	if !since.IsZero() {
		key += eventTimeKey(since)
	}
	end := clientv3.GetPrefixRangeEnd(EventsPrefix)
	// Read forward in pages and keep the last limit matches in a ring: etcd
	// honours a limit only in ascending key order.
	ring := make([]*berthv1.Event, 0, min(limit, eventReadPage))
	next := 0
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(eventReadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, key, opts...)
		if err != nil {
			return nil, 0, fmt.Errorf("reading events: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			ev := &berthv1.Event{}
			if err := decode(kv.Value, kv.ModRevision, ev); err != nil {
				return nil, 0, fmt.Errorf("%s: %w", kv.Key, err)
			}
			if match != nil && !match(ev) {
				continue
			}
			if len(ring) < limit {
				ring = append(ring, ev)
				continue
			}
			ring[next] = ev
			next = (next + 1) % limit
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return append(ring[next:], ring[:next]...), rev, nil
}

// RecentEvents returns up to limit of the newest events, oldest first.
func (s *Store) RecentEvents(ctx context.Context, limit int64) ([]*berthv1.Event, error) {
	return s.Events(ctx, time.Time{}, int(limit), nil)
}

// TaskEvent is an event about task t with the attributes that find it by
// namespace, app, service, slot, task and node. nodeName may be empty.
func TaskEvent(t *berthv1.Task, action, message, nodeName string) *berthv1.Event {
	attrs := map[string]string{
		AttrNamespace: t.GetNamespace(),
		AttrApp:       t.GetApp(),
		AttrService:   t.GetService(),
		AttrTask:      t.GetMeta().GetId(),
	}
	if t.GetSlot() > 0 {
		attrs[AttrSlot] = strconv.FormatUint(t.GetSlot(), 10)
	}
	if t.GetNodeId() != "" {
		attrs[AttrNode] = t.GetNodeId()
	}
	if nodeName != "" {
		attrs[AttrNodeName] = nodeName
	}
	return &berthv1.Event{Kind: EventKindTask, ObjectId: t.GetMeta().GetId(), Action: action, Message: message, Attributes: attrs}
}

// TaskName is how event messages name a task: "web.2" for slot 2 of
// service web, "web" for a task of a global service (its node is named
// beside it).
func TaskName(t *berthv1.Task) string {
	if t.GetSlot() > 0 {
		return t.GetService() + "." + strconv.FormatUint(t.GetSlot(), 10)
	}
	return t.GetService()
}
