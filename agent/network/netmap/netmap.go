// Package netmap keeps an agent's view of the cluster's networks: the
// networks, the services' names and virtual IPs, where each task is and
// whether it takes traffic, and how to reach each node. The control plane
// sends it as NetworkMap messages, the first full and the rest changes;
// Map folds them into immutable snapshots that the DNS server, the
// load-balancing rules and the overlay read without locks.
package netmap

import (
	"maps"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Snapshot is the network map at one moment. It is never modified: a
// change makes a new Snapshot. Its maps are keyed by id.
type Snapshot struct {
	Networks map[string]*berthv1.Network
	Services map[string]*berthv1.NetworkService
	Tasks    map[string]*berthv1.NetworkTask
	Nodes    map[string]*berthv1.NetworkNode
	// Version grows by one with each change; 0 is the empty map before
	// the first message.
	Version uint64
}

// Empty is the map before the control plane has sent anything.
var Empty = &Snapshot{
	Networks: map[string]*berthv1.Network{},
	Services: map[string]*berthv1.NetworkService{},
	Tasks:    map[string]*berthv1.NetworkTask{},
	Nodes:    map[string]*berthv1.NetworkNode{},
}

// Map folds NetworkMap messages into snapshots. It is safe for concurrent
// use.
type Map struct {
	mu  sync.Mutex
	cur *Snapshot
}

// New returns an empty map.
func New() *Map { return &Map{cur: Empty} }

// Current returns the latest snapshot.
func (m *Map) Current() *Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// Apply folds msg into the map and returns the new snapshot.
func (m *Map) Apply(msg *berthv1.NetworkMap) *Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = m.cur.apply(msg)
	return m.cur
}

func (s *Snapshot) apply(msg *berthv1.NetworkMap) *Snapshot {
	next := &Snapshot{Version: s.Version + 1}
	if msg.GetFull() {
		next.Networks = map[string]*berthv1.Network{}
		next.Services = map[string]*berthv1.NetworkService{}
		next.Tasks = map[string]*berthv1.NetworkTask{}
		next.Nodes = map[string]*berthv1.NetworkNode{}
	} else {
		next.Networks = maps.Clone(s.Networks)
		next.Services = maps.Clone(s.Services)
		next.Tasks = maps.Clone(s.Tasks)
		next.Nodes = maps.Clone(s.Nodes)
	}
	for _, n := range msg.GetNetworks() {
		next.Networks[n.GetMeta().GetId()] = n
	}
	for _, sv := range msg.GetServices() {
		next.Services[sv.GetId()] = sv
	}
	for _, t := range msg.GetTasks() {
		next.Tasks[t.GetId()] = t
	}
	for _, n := range msg.GetNodes() {
		next.Nodes[n.GetId()] = n
	}
	for _, id := range msg.GetRemovedNetworks() {
		delete(next.Networks, id)
	}
	for _, id := range msg.GetRemovedServices() {
		delete(next.Services, id)
	}
	for _, id := range msg.GetRemovedTasks() {
		delete(next.Tasks, id)
	}
	for _, id := range msg.GetRemovedNodes() {
		delete(next.Nodes, id)
	}
	return next
}
