package dispatcher

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
)

var (
	assignedState = berthv1.TaskState_TASK_STATE_ASSIGNED
	runningState  = berthv1.TaskState_TASK_STATE_RUNNING
	shutdownState = berthv1.TaskState_TASK_STATE_SHUTDOWN
)

// netTaskOf is a task of service s1 on node with one address on app_front.
func netTaskOf(id, node string, state, desired berthv1.TaskState, health berthv1.Health) *berthv1.Task {
	t := task(id, node, state, 1, desired)
	t.Slot = 1
	t.Status.Health = health
	t.Networks = []*berthv1.TaskNetwork{{NetworkId: "net1", Network: "app_front", Address: "10.10.0.2/24"}}
	return t
}

func TestNetTask(t *testing.T) {
	none := berthv1.Health_HEALTH_UNSPECIFIED
	tests := []struct {
		name   string
		task   *berthv1.Task
		inMap  bool
		ready  bool
		health berthv1.Health
	}{
		{"pending, no node", netTaskOf("a", "", berthv1.TaskState_TASK_STATE_PENDING, runningState, none), false, false, none},
		{"assigned", netTaskOf("a", "n1", assignedState, runningState, none), true, false, none},
		{"running without a check", netTaskOf("a", "n1", runningState, runningState, none), true, true, none},
		{"running, starting its check", netTaskOf("a", "n1", runningState, runningState, berthv1.Health_HEALTH_STARTING), true, false, none},
		{"running and healthy", netTaskOf("a", "n1", runningState, runningState, berthv1.Health_HEALTH_HEALTHY), true, true, none},
		{"running and unhealthy", netTaskOf("a", "n1", runningState, runningState, berthv1.Health_HEALTH_UNHEALTHY), true, false, none},
		{"running, told to stop", netTaskOf("a", "n1", runningState, shutdownState, none), true, false, none},
		{"ended", netTaskOf("a", "n1", berthv1.TaskState_TASK_STATE_FAILED, runningState, none), false, false, none},
		{"orphaned", netTaskOf("a", "n1", berthv1.TaskState_TASK_STATE_ORPHANED, runningState, none), false, false, none},
		{"no addresses", task("a", "n1", runningState, 1, runningState), false, false, none},
	}
	for _, tt := range tests {
		got := netTask(tt.task)
		if (got != nil) != tt.inMap {
			t.Errorf("%s: in the map = %v, want %v", tt.name, got != nil, tt.inMap)
			continue
		}
		if got == nil {
			continue
		}
		if got.Ready != tt.ready {
			t.Errorf("%s: ready = %v, want %v", tt.name, got.Ready, tt.ready)
		}
		if got.Id != "a" || got.ServiceId != "s1" || got.NodeId != "n1" || got.Slot != 1 || len(got.Networks) != 1 {
			t.Errorf("%s: record %v does not carry the task's place", tt.name, got)
		}
	}
}

func TestNetNode(t *testing.T) {
	tests := []struct {
		name string
		node *berthv1.Node
		want *berthv1.NetworkNode
	}{
		{"host and port", &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Address: "192.0.2.7:4243", Subnet: "10.210.3.0/24", Overlay: true},
			&berthv1.NetworkNode{Id: "n1", Address: "192.0.2.7", Subnet: "10.210.3.0/24"}},
		{"IPv6 host", &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Address: "[::1]:4243", Subnet: "10.210.3.0/24", Overlay: true},
			&berthv1.NetworkNode{Id: "n1", Address: "::1", Subnet: "10.210.3.0/24"}},
		{"no overlay", &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Address: "192.0.2.7:4243", Subnet: "10.210.3.0/24"}, nil},
		{"no subnet yet", &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Address: "192.0.2.7:4243", Overlay: true}, nil},
	}
	for _, tt := range tests {
		if got := netNode(tt.node); !proto.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// netDispatcher is a dispatcher with an overlay session on n1 and one
// without on n2.
func netDispatcher(c *store.Cache) (*Dispatcher, *session, *session) {
	d := New(Config{Cache: c, Log: slog.New(slog.DiscardHandler)})
	overlay := newSession("n1", context.Background(), func() {})
	overlay.overlay = true
	plain := newSession("n2", context.Background(), func() {})
	d.sessions["n1"], d.sessions["n2"] = overlay, plain
	d.overlay = map[string]*session{"n1": overlay}
	return d, overlay, plain
}

func putEvent(old, cur store.Object) store.Event {
	ev := store.Event{Action: store.ActionPut, Object: cur}
	switch cur.(type) {
	case *berthv1.Task:
		ev.Kind = store.KindTask
	case *berthv1.Service:
		ev.Kind = store.KindService
	case *berthv1.Node:
		ev.Kind = store.KindNode
	case *berthv1.Network:
		ev.Kind = store.KindNetwork
	}
	if old != nil {
		ev.Old = old
	}
	return ev
}

// mapSummary says what a network map carries: "task a ready", "-task a".
func mapSummary(m *berthv1.NetworkMap) []string {
	if m == nil {
		return nil
	}
	var out []string
	if m.Full {
		out = append(out, "full")
	}
	for _, n := range m.Networks {
		out = append(out, "network "+n.GetMeta().GetId())
	}
	for _, s := range m.Services {
		out = append(out, "service "+s.Id)
	}
	for _, t := range m.Tasks {
		word := "not ready"
		if t.Ready {
			word = "ready"
		}
		out = append(out, "task "+t.Id+" "+word)
	}
	for _, n := range m.Nodes {
		out = append(out, "node "+n.Id+" "+n.Address)
	}
	for _, id := range m.RemovedNetworks {
		out = append(out, "-network "+id)
	}
	for _, id := range m.RemovedServices {
		out = append(out, "-service "+id)
	}
	for _, id := range m.RemovedTasks {
		out = append(out, "-task "+id)
	}
	for _, id := range m.RemovedNodes {
		out = append(out, "-node "+id)
	}
	return out
}

func TestNetworkMapFollowsATask(t *testing.T) {
	d, overlay, plain := netDispatcher(nil)
	none, healthy, unhealthy := berthv1.Health_HEALTH_UNSPECIFIED, berthv1.Health_HEALTH_HEALTHY, berthv1.Health_HEALTH_UNHEALTHY
	pendingTask := netTaskOf("a", "", berthv1.TaskState_TASK_STATE_PENDING, runningState, none)
	assigned := netTaskOf("a", "n1", assignedState, runningState, none)
	run := netTaskOf("a", "n1", runningState, runningState, healthy)
	detail := proto.Clone(run).(*berthv1.Task)
	detail.Status.Message = "still fine"
	sick := netTaskOf("a", "n1", runningState, runningState, unhealthy)
	cured := netTaskOf("a", "n1", runningState, runningState, healthy)
	stopping := netTaskOf("a", "n1", runningState, shutdownState, healthy)
	stopped := netTaskOf("a", "n1", shutdownState, shutdownState, none)
	steps := []struct {
		name string
		ev   store.Event
		want []string
	}{
		{"created, no node", putEvent(nil, pendingTask), nil},
		{"assigned", putEvent(pendingTask, assigned), []string{"task a not ready"}},
		{"running and healthy", putEvent(assigned, run), []string{"task a ready"}},
		{"a detail the map does not hold", putEvent(run, detail), nil},
		{"unhealthy", putEvent(detail, sick), []string{"task a not ready"}},
		{"healthy again", putEvent(sick, cured), []string{"task a ready"}},
		{"told to stop", putEvent(cured, stopping), []string{"task a not ready"}},
		{"ended", putEvent(stopping, stopped), []string{"-task a"}},
		{"deleted", store.Event{Kind: store.KindTask, Action: store.ActionDelete, Object: stopped, Old: stopped}, nil},
	}
	for _, step := range steps {
		d.routeEvent(step.ev)
		if got := mapSummary(overlay.takeNetwork()); !slices.Equal(got, step.want) {
			t.Errorf("%s: the overlay session got %v, want %v", step.name, got, step.want)
		}
		if m := plain.takeNetwork(); m != nil {
			t.Errorf("%s: the session without an overlay got %v", step.name, mapSummary(m))
		}
	}
}

func TestNetworkMapFollowsServicesNodesAndNetworks(t *testing.T) {
	d, overlay, _ := netDispatcher(nil)
	svc := &berthv1.Service{Meta: &berthv1.Meta{Id: "s1"}, Namespace: "default", App: "app", Name: "web",
		Spec: &berthv1.ServiceSpec{Networks: []*berthv1.ServiceNetwork{{Network: "app_front"}}}}
	withVIP := proto.Clone(svc).(*berthv1.Service)
	withVIP.Endpoint = &berthv1.ServiceEndpoint{VirtualIps: []*berthv1.VirtualIP{{NetworkId: "net1", Network: "app_front", Address: "10.10.0.2"}}}
	rescaled := proto.Clone(withVIP).(*berthv1.Service)
	rescaled.Spec.Replicas = 5
	node := &berthv1.Node{Meta: &berthv1.Meta{Id: "n3"}, Address: "192.0.2.3:4243", Subnet: "10.210.3.0/24", Overlay: true}
	beat := proto.Clone(node).(*berthv1.Node)
	beat.Images = []string{"busybox"}
	network := &berthv1.Network{Meta: &berthv1.Meta{Id: "net1"}, Namespace: "default", Name: "app_front", Subnet: "10.10.0.0/24"}
	steps := []struct {
		name string
		ev   store.Event
		want []string
	}{
		{"network created", putEvent(nil, network), []string{"network net1"}},
		{"service created", putEvent(nil, svc), []string{"service s1"}},
		{"its virtual IP", putEvent(svc, withVIP), []string{"service s1"}},
		{"a change the map does not hold", putEvent(withVIP, rescaled), nil},
		{"node joined", putEvent(nil, node), []string{"node n3 192.0.2.3"}},
		{"node heartbeat", putEvent(node, beat), nil},
		{"node gone", store.Event{Kind: store.KindNode, Action: store.ActionDelete, Object: beat, Old: beat}, []string{"-node n3"}},
		{"service removed", store.Event{Kind: store.KindService, Action: store.ActionDelete, Object: rescaled, Old: rescaled}, []string{"-service s1"}},
		{"network removed", store.Event{Kind: store.KindNetwork, Action: store.ActionDelete, Object: network, Old: network}, []string{"-network net1"}},
	}
	for _, step := range steps {
		d.routeEvent(step.ev)
		if got := mapSummary(overlay.takeNetwork()); !slices.Equal(got, step.want) {
			t.Errorf("%s: got %v, want %v", step.name, got, step.want)
		}
	}
}

func TestNetworkQueueCoalesces(t *testing.T) {
	rec := func(id string, ready bool) netChange {
		return netChange{kind: store.KindTask, id: id, record: &berthv1.NetworkTask{Id: id, Ready: ready}}
	}
	gone := func(id string) netChange { return netChange{kind: store.KindTask, id: id, removed: true} }
	tests := []struct {
		name string
		ops  func(q *netQueue)
		want []string
	}{
		{"nothing", func(q *netQueue) {}, nil},
		{"the latest record wins", func(q *netQueue) { q.queue(rec("a", false)); q.queue(rec("a", true)) }, []string{"task a ready"}},
		{"a removal cancels a record", func(q *netQueue) { q.queue(rec("a", true)); q.queue(gone("a")) }, []string{"-task a"}},
		{"a record cancels a removal", func(q *netQueue) { q.queue(gone("a")); q.queue(rec("a", false)) }, []string{"task a not ready"}},
		{"a full map replaces what was queued", func(q *netQueue) {
			q.queue(rec("a", true))
			q.queue(gone("b"))
			q.queueFull(&berthv1.NetworkMap{Full: true, Tasks: []*berthv1.NetworkTask{{Id: "c"}}})
			q.queue(rec("d", true))
		}, []string{"full", "task c not ready", "task d ready"}},
		{"an empty full map still goes out", func(q *netQueue) { q.queueFull(&berthv1.NetworkMap{Full: true}) }, []string{"full"}},
	}
	for _, tt := range tests {
		var q netQueue
		tt.ops(&q)
		if got := mapSummary(q.take()); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
		if again := q.take(); again != nil {
			t.Errorf("%s: a second take sent %v", tt.name, mapSummary(again))
		}
	}
}

// recordingStream keeps what a session sends.
type recordingStream struct {
	trailerStream
	mu   sync.Mutex
	sent []*berthv1.ServerMessage
	more chan struct{}
}

func (s *recordingStream) Send(m *berthv1.ServerMessage) error {
	s.mu.Lock()
	s.sent = append(s.sent, m)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
	return nil
}

// waitSent waits until the stream holds n messages and returns them.
func (s *recordingStream) waitSent(t *testing.T, n int) []*berthv1.ServerMessage {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		got := slices.Clone(s.sent)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("the session sent %d messages, want %d", len(got), n)
		}
	}
}

// TestMapChangeGoesBeforeTheStop tells a running task's node to stop it:
// the network map that takes it out of the endpoints leaves first.
func TestMapChangeGoesBeforeTheStop(t *testing.T) {
	d, overlay, _ := netDispatcher(nil)
	run := netTaskOf("a", "n1", runningState, runningState, berthv1.Health_HEALTH_UNSPECIFIED)
	stop := netTaskOf("a", "n1", runningState, shutdownState, berthv1.Health_HEALTH_UNSPECIFIED)
	d.routeEvent(putEvent(run, stop))

	stream := &recordingStream{more: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- overlay.sendLoop(ctx, stream, nil) }()
	sent := stream.waitSent(t, 2)
	cancel()
	<-done
	m, a := sent[0].GetNetworkMap(), sent[1].GetAssignments()
	if m == nil || a == nil {
		t.Fatalf("sent %v then %v, want the network map then the assignments", sent[0], sent[1])
	}
	if got := mapSummary(m); !slices.Equal(got, []string{"task a not ready"}) {
		t.Errorf("the map says %v, want task a not ready", got)
	}
	if len(a.Tasks) != 1 || a.Tasks[0].DesiredState != shutdownState {
		t.Errorf("the assignment is %v, want task a told to stop", a)
	}
}

func TestFullNetworkMap(t *testing.T) {
	s, c := newStoreAndCache(t)
	ctx := context.Background()
	network := &berthv1.Network{Meta: &berthv1.Meta{Id: "net1"}, Namespace: "default", App: "app", Name: "app_front", Subnet: "10.10.0.0/24"}
	svc := &berthv1.Service{Meta: &berthv1.Meta{Id: "s1"}, Namespace: "default", App: "app", Name: "web",
		Spec: &berthv1.ServiceSpec{
			Networks:     []*berthv1.ServiceNetwork{{Network: "app_front", Aliases: []string{"www"}}},
			EndpointMode: berthv1.EndpointMode_ENDPOINT_MODE_VIP,
			Ports:        []*berthv1.PortSpec{{Target: 80, Published: 8080, Protocol: "tcp"}},
		},
		Endpoint: &berthv1.ServiceEndpoint{VirtualIps: []*berthv1.VirtualIP{{NetworkId: "net1", Network: "app_front", Address: "10.10.0.3"}}},
	}
	live := netTaskOf("t1", "n1", runningState, runningState, berthv1.Health_HEALTH_UNSPECIFIED)
	ended := netTaskOf("t2", "n1", berthv1.TaskState_TASK_STATE_FAILED, runningState, berthv1.Health_HEALTH_UNSPECIFIED)
	waiting := netTaskOf("t3", "", berthv1.TaskState_TASK_STATE_PENDING, runningState, berthv1.Health_HEALTH_UNSPECIFIED)
	var txn store.Txn
	txn.Create(store.NetworkKey(network.Namespace, network.Name), network)
	txn.Create(store.ServiceKey(svc.Namespace, svc.App, svc.Name), svc)
	for _, tk := range []*berthv1.Task{live, ended, waiting} {
		txn.Create(store.TaskKey(tk.Namespace, tk.App, tk.Service, tk.GetMeta().GetId()), tk)
	}
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	d, overlay, plain := netDispatcher(c)
	d.cfg.Store = s
	pool, err := NewSubnetPool("10.210.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	d.cfg.Subnets = pool
	// The agents register: the overlay flag is stored on their nodes.
	for id, overlay := range map[string]bool{"n1": true, "n2": false} {
		if _, _, err := d.register(ctx, id, joined(t, s, c, id, id, nil), &berthv1.NodeDescription{Name: id, Address: "127.0.0.1:4243", Overlay: overlay}); err != nil {
			t.Fatal(err)
		}
		if n, _ := c.Node(id); n.GetOverlay() != overlay {
			t.Fatalf("node %s stored overlay = %v, want %v", id, n.GetOverlay(), overlay)
		}
	}

	d.startNetworkMap(overlay)
	m := overlay.takeNetwork()
	want := []string{"full", "network net1", "service s1", "task t1 ready", "node n1 127.0.0.1"}
	if got := mapSummary(m); !slices.Equal(got, want) {
		t.Fatalf("full map %v, want %v", got, want)
	}
	wantService := &berthv1.NetworkService{Id: "s1", Namespace: "default", App: "app", Name: "web", EndpointMode: berthv1.EndpointMode_ENDPOINT_MODE_VIP,
		Networks: svc.Spec.Networks, VirtualIps: svc.Endpoint.VirtualIps, Ports: svc.Spec.Ports}
	if !proto.Equal(m.Services[0], wantService) {
		t.Errorf("service record %v, want %v", m.Services[0], wantService)
	}
	if n, _ := c.Node("n1"); m.Nodes[0].Subnet != n.Subnet || n.Subnet == "" {
		t.Errorf("node record subnet %q, want the node's %q", m.Nodes[0].Subnet, n.Subnet)
	}

	// A resync sends every overlay session the whole map again.
	d.routeEvent(store.Event{Kind: store.KindResync})
	if got := mapSummary(overlay.takeNetwork()); !slices.Equal(got, want) {
		t.Errorf("after a resync: %v, want %v", got, want)
	}
	if m := plain.takeNetwork(); m != nil {
		t.Errorf("the session without an overlay got %v", mapSummary(m))
	}
}

// TestNetworkMapStampsChanges: a task record that changes carries when the
// dispatcher saw it, and a map that removes tasks says when the earliest
// removal was seen, so that agents can measure how long they take.
func TestNetworkMapStampsChanges(t *testing.T) {
	d, overlay, _ := netDispatcher(nil)
	none := berthv1.Health_HEALTH_UNSPECIFIED
	assigned := netTaskOf("a", "n1", assignedState, runningState, none)
	stopped := netTaskOf("a", "n1", shutdownState, shutdownState, none)

	before := time.Now()
	d.routeEvent(putEvent(nil, assigned))
	m := overlay.takeNetwork()
	if len(m.GetTasks()) != 1 || m.GetTasks()[0].GetChangedAt() == nil || m.GetTasks()[0].GetChangedAt().AsTime().Before(before) {
		t.Fatalf("changed task record: %v, want it stamped with when it was seen", m.GetTasks())
	}
	if m.GetTasksRemovedAt() != nil {
		t.Errorf("a map that removes no task has tasks_removed_at %v", m.GetTasksRemovedAt())
	}

	before = time.Now()
	d.routeEvent(putEvent(assigned, stopped))
	m = overlay.takeNetwork()
	if !slices.Equal(m.GetRemovedTasks(), []string{"a"}) || m.GetTasksRemovedAt() == nil || m.GetTasksRemovedAt().AsTime().Before(before) {
		t.Fatalf("removal: removed %v at %v, want task a stamped with when it was seen", m.GetRemovedTasks(), m.GetTasksRemovedAt())
	}
}
