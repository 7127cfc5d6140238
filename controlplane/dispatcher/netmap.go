package dispatcher

import (
	"google.golang.org/protobuf/types/known/timestamppb"
	"net"
	"sort"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
)

// The network map: every agent whose node joins the cluster's networks
// (NodeDescription.overlay) gets the whole map when its session starts,
// then the changes, derived from the cache's events. A record is sent only
// when what the agent reads of it changes: a task's heartbeat-like status
// details, a node's heartbeat, never reach the agents. Agents without an
// overlay (the fake runtime's) get no map, and while none is connected
// the router derives nothing.
//
// A change of a task goes out before the assignment that tells its node to
// stop it (route queues it first, and the session sends maps before
// assignments): the other nodes stop sending it traffic first.

// netTask is what the map says of t: nil when t is not in it (no node yet,
// no addresses, or ended).
func netTask(t *berthv1.Task) *berthv1.NetworkTask {
	st := t.GetStatus()
	if t.GetNodeId() == "" || len(t.GetNetworks()) == 0 || st.GetState() < berthv1.TaskState_TASK_STATE_ASSIGNED || taskstate.Terminal(st.GetState()) {
		return nil
	}
	return &berthv1.NetworkTask{
		Id:        t.GetMeta().GetId(),
		ServiceId: t.GetServiceId(),
		NodeId:    t.GetNodeId(),
		Slot:      t.GetSlot(),
		Networks:  t.GetNetworks(),
		Ready:     taskstate.InService(t),
	}
}

// netService is what the map says of s.
func netService(s *berthv1.Service) *berthv1.NetworkService {
	spec := s.GetSpec()
	return &berthv1.NetworkService{
		Id:           s.GetMeta().GetId(),
		Namespace:    s.GetNamespace(),
		App:          s.GetApp(),
		Name:         s.GetName(),
		EndpointMode: spec.GetEndpointMode(),
		Networks:     spec.GetNetworks(),
		VirtualIps:   s.GetEndpoint().GetVirtualIps(),
		Ports:        spec.GetPorts(),
	}
}

// netNode is what the map says of n: nil for a node without an overlay or
// a subnet.
func netNode(n *berthv1.Node) *berthv1.NetworkNode {
	if !n.GetOverlay() || n.GetSubnet() == "" || n.GetAddress() == "" {
		return nil
	}
	host := n.GetAddress()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return &berthv1.NetworkNode{Id: n.GetMeta().GetId(), Address: host, Subnet: n.GetSubnet()}
}

// fullNetworkMap is the whole map as the cache holds it now.
func (d *Dispatcher) fullNetworkMap() *berthv1.NetworkMap {
	c := d.cfg.Cache
	m := &berthv1.NetworkMap{Full: true, Networks: c.Networks(store.NetworksPrefix)}
	for _, s := range c.Services(store.ServicesPrefix) {
		m.Services = append(m.Services, netService(s))
	}
	for _, t := range c.Tasks() {
		if nt := netTask(t); nt != nil {
			m.Tasks = append(m.Tasks, nt)
		}
	}
	for _, n := range c.Nodes() {
		if nn := netNode(n); nn != nil {
			m.Nodes = append(m.Nodes, nn)
		}
	}
	return m
}

// netChange is one change of the map: a record to add or replace, or the
// id of one to remove, of one kind.
type netChange struct {
	kind    store.Kind
	id      string
	record  proto.Message // nil: removed
	removed bool
	// at is when a task's removal was seen, for the agents' measure.
	at time.Time
}

// networkChange derives the change of the map an event makes, comparing
// what the map says of the object before and after it; ok is false when
// the map does not change.
func networkChange(ev store.Event) (netChange, bool) {
	id := ev.Object.GetMeta().GetId()
	switch ev.Kind {
	case store.KindTask:
		before, after := records(ev, netTask)
		c, ok := change(store.KindTask, id, before, after)
		// Agents measure from here how long their rules take to follow
		// (berth_network_programming_seconds).
		switch {
		case ok && c.removed:
			c.at = time.Now()
		case ok:
			after.ChangedAt = timestamppb.Now()
		}
		return c, ok
	case store.KindService:
		before, after := records(ev, netService)
		return change(store.KindService, id, before, after)
	case store.KindNode:
		before, after := records(ev, netNode)
		return change(store.KindNode, id, before, after)
	case store.KindNetwork:
		before, after := records(ev, func(n *berthv1.Network) *berthv1.Network { return n })
		return change(store.KindNetwork, id, before, after)
	}
	return netChange{}, false
}

// records derives what the map says of an event's object before and
// after the event (the zero R where there is none).
func records[O any, R any](ev store.Event, record func(O) R) (before, after R) {
	if old, ok := ev.Old.(O); ok {
		before = record(old)
	}
	if o, ok := ev.Object.(O); ok && ev.Action != store.ActionDelete {
		after = record(o)
	}
	return before, after
}

func change[T interface {
	comparable
	proto.Message
}](kind store.Kind, id string, before, after T) (netChange, bool) {
	var zero T
	switch {
	case after == zero && before == zero:
		return netChange{}, false
	case after == zero:
		return netChange{kind: kind, id: id, removed: true}, true
	case before != zero && proto.Equal(before, after):
		return netChange{}, false
	}
	return netChange{kind: kind, id: id, record: after}, true
}

// routeNetwork queues the change of the map an event makes to every
// overlay session.
func (d *Dispatcher) routeNetwork(ev store.Event) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	d.mu.Lock()
	sessions := d.overlaySessions()
	d.mu.Unlock()
	if len(sessions) == 0 {
		return
	}
	c, ok := networkChange(ev)
	if !ok {
		return
	}
	for _, s := range sessions {
		s.queueNetwork(c)
	}
}

// startNetworkMap queues the whole map to s, a new overlay session, and
// makes it get the changes from then on. netMu orders it with the router:
// no change the router routes is lost under the full map, and the full map
// is at least as new as every change routed before it.
func (d *Dispatcher) startNetworkMap(s *session) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	s.queueFullNetwork(d.fullNetworkMap())
}

// resyncNetworkMaps sends every overlay session the whole map again.
func (d *Dispatcher) resyncNetworkMaps() {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	d.mu.Lock()
	sessions := d.overlaySessions()
	d.mu.Unlock()
	if len(sessions) == 0 {
		return
	}
	m := d.fullNetworkMap()
	for _, s := range sessions {
		s.queueFullNetwork(m)
	}
}

// overlaySessions are the sessions that get the map; d.mu is held.
func (d *Dispatcher) overlaySessions() []*session {
	if len(d.overlay) == 0 {
		return nil
	}
	out := make([]*session, 0, len(d.overlay))
	for _, s := range d.overlay {
		out = append(out, s)
	}
	return out
}

// netQueue is one session's queued changes of the map; the latest record
// of an id wins, and a full map replaces everything queued.
type netQueue struct {
	full     bool
	records  map[store.Kind]map[string]proto.Message
	removals map[store.Kind]map[string]bool
	// tasksRemovedAt is when the earliest queued task removal was seen.
	tasksRemovedAt time.Time
}

func (q *netQueue) queue(c netChange) {
	if q.records == nil {
		q.records = map[store.Kind]map[string]proto.Message{}
		q.removals = map[store.Kind]map[string]bool{}
	}
	if q.records[c.kind] == nil {
		q.records[c.kind] = map[string]proto.Message{}
		q.removals[c.kind] = map[string]bool{}
	}
	if c.removed {
		delete(q.records[c.kind], c.id)
		q.removals[c.kind][c.id] = true
		if !c.at.IsZero() && (q.tasksRemovedAt.IsZero() || c.at.Before(q.tasksRemovedAt)) {
			q.tasksRemovedAt = c.at
		}
		return
	}
	delete(q.removals[c.kind], c.id)
	q.records[c.kind][c.id] = c.record
}

func (q *netQueue) queueFull(m *berthv1.NetworkMap) {
	*q = netQueue{full: true}
	for _, n := range m.GetNetworks() {
		q.queue(netChange{kind: store.KindNetwork, id: n.GetMeta().GetId(), record: n})
	}
	for _, s := range m.GetServices() {
		q.queue(netChange{kind: store.KindService, id: s.GetId(), record: s})
	}
	for _, t := range m.GetTasks() {
		q.queue(netChange{kind: store.KindTask, id: t.GetId(), record: t})
	}
	for _, n := range m.GetNodes() {
		q.queue(netChange{kind: store.KindNode, id: n.GetId(), record: n})
	}
}

// take returns what is queued as one message, or nil for nothing.
func (q *netQueue) take() *berthv1.NetworkMap {
	empty := !q.full
	for k := range q.records {
		empty = empty && len(q.records[k]) == 0 && len(q.removals[k]) == 0
	}
	if empty {
		return nil
	}
	m := &berthv1.NetworkMap{Full: q.full}
	for _, id := range sortedIDs(q.records[store.KindNetwork]) {
		m.Networks = append(m.Networks, q.records[store.KindNetwork][id].(*berthv1.Network))
	}
	for _, id := range sortedIDs(q.records[store.KindService]) {
		m.Services = append(m.Services, q.records[store.KindService][id].(*berthv1.NetworkService))
	}
	for _, id := range sortedIDs(q.records[store.KindTask]) {
		m.Tasks = append(m.Tasks, q.records[store.KindTask][id].(*berthv1.NetworkTask))
	}
	for _, id := range sortedIDs(q.records[store.KindNode]) {
		m.Nodes = append(m.Nodes, q.records[store.KindNode][id].(*berthv1.NetworkNode))
	}
	m.RemovedNetworks = sortedIDs(q.removals[store.KindNetwork])
	m.RemovedServices = sortedIDs(q.removals[store.KindService])
	m.RemovedTasks = sortedIDs(q.removals[store.KindTask])
	m.RemovedNodes = sortedIDs(q.removals[store.KindNode])
	if len(m.RemovedTasks) > 0 && !q.tasksRemovedAt.IsZero() {
		m.TasksRemovedAt = timestamppb.New(q.tasksRemovedAt)
	}
	*q = netQueue{}
	return m
}

func sortedIDs[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
