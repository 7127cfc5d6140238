package apiserver

import (
	"context"
	"maps"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
)

// addNode stores n and waits until the cache holds it.
func addNode(t *testing.T, s *Server, n *berthv1.Node) {
	t.Helper()
	ctx := context.Background()
	var txn store.Txn
	txn.Create(store.NodeKey(n.GetMeta().GetId()), n)
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
}

// nodeEvents returns the messages of the history's node events.
func nodeEvents(t *testing.T, s *Server) []string {
	t.Helper()
	ctx := context.Background()
	if err := s.cfg.Store.FlushEvents(ctx); err != nil {
		t.Fatal(err)
	}
	events, err := s.cfg.Store.Events(ctx, time.Time{}, 100, func(ev *berthv1.Event) bool { return ev.Kind == store.EventKindNode })
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range events {
		out = append(out, ev.Message)
	}
	return out
}

func TestUpdateNode(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	active := berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	drain := berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	agent := map[string]string{"zone": "us", "disk": "ssd"}
	addNode(t, s, &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Name: "alpha", Availability: active, AgentLabels: agent, Labels: maps.Clone(agent)})
	// A node registered before agent and operator labels were kept apart.
	addNode(t, s, &berthv1.Node{Meta: &berthv1.Meta{Id: "n2"}, Name: "beta", Availability: active, Labels: map[string]string{"zone": "ap"}})

	tests := []struct {
		name         string
		req          *berthv1.UpdateNodeRequest
		code         codes.Code
		words        []string
		availability berthv1.NodeAvailability
		operator     map[string]string
		labels       map[string]string
		event        string // "" when nothing may be written
	}{
		{name: "drain and label by name",
			req:          &berthv1.UpdateNodeRequest{Node: "alpha", Availability: drain, SetLabels: map[string]string{"zone": "eu", "tier": "gold"}},
			availability: drain, operator: map[string]string{"zone": "eu", "tier": "gold"}, labels: map[string]string{"zone": "eu", "disk": "ssd", "tier": "gold"},
			event: "node alpha drained by an operator; labels set: tier=gold, zone=eu"},
		{name: "the same again writes nothing",
			req:          &berthv1.UpdateNodeRequest{Node: "n1", Availability: drain, SetLabels: map[string]string{"zone": "eu"}},
			availability: drain, operator: map[string]string{"zone": "eu", "tier": "gold"}, labels: map[string]string{"zone": "eu", "disk": "ssd", "tier": "gold"}},
		{name: "remove by id uncovers the agent's label",
			req:          &berthv1.UpdateNodeRequest{Node: "n1", RemoveLabels: []string{"zone", "never-set"}},
			availability: drain, operator: map[string]string{"tier": "gold"}, labels: map[string]string{"zone": "us", "disk": "ssd", "tier": "gold"},
			event: "node alpha labels removed: zone"},
		{name: "activate",
			req:          &berthv1.UpdateNodeRequest{Node: "alpha", Availability: active},
			availability: active, operator: map[string]string{"tier": "gold"}, labels: map[string]string{"zone": "us", "disk": "ssd", "tier": "gold"},
			event: "node alpha activated by an operator"},
		{name: "an agent's label cannot be removed", req: &berthv1.UpdateNodeRequest{Node: "alpha", RemoveLabels: []string{"disk"}},
			code: codes.FailedPrecondition, words: []string{`"disk"`, "agent"}},
		{name: "unknown node", req: &berthv1.UpdateNodeRequest{Node: "gamma", Availability: drain},
			code: codes.NotFound, words: []string{`node "gamma" not found`}},
		{name: "no node", req: &berthv1.UpdateNodeRequest{Availability: drain}, code: codes.InvalidArgument, words: []string{"name the node"}},
		{name: "unknown availability", req: &berthv1.UpdateNodeRequest{Node: "alpha", Availability: 9},
			code: codes.InvalidArgument, words: []string{"active, pause or drain"}},
		{name: "empty key", req: &berthv1.UpdateNodeRequest{Node: "alpha", SetLabels: map[string]string{"": "x"}},
			code: codes.InvalidArgument, words: []string{"empty key"}},
		{name: "'=' in a key", req: &berthv1.UpdateNodeRequest{Node: "alpha", SetLabels: map[string]string{"a=b": "x"}},
			code: codes.InvalidArgument, words: []string{`"a=b"`, "'='"}},
		{name: "space in a key", req: &berthv1.UpdateNodeRequest{Node: "alpha", SetLabels: map[string]string{"my zone": "x"}},
			code: codes.InvalidArgument, words: []string{`"my zone"`, "letters, digits"}},
		{name: "key ends badly", req: &berthv1.UpdateNodeRequest{Node: "alpha", RemoveLabels: []string{"zone."}},
			code: codes.InvalidArgument, words: []string{`"zone."`, "start and end"}},
		{name: "control character in a value", req: &berthv1.UpdateNodeRequest{Node: "alpha", SetLabels: map[string]string{"zone": "eu\n"}},
			code: codes.InvalidArgument, words: []string{`"zone"`}},
		{name: "set and removed", req: &berthv1.UpdateNodeRequest{Node: "alpha", SetLabels: map[string]string{"zone": "eu"}, RemoveLabels: []string{"zone"}},
			code: codes.InvalidArgument, words: []string{"both set and removed"}},
		{name: "every problem at once", req: &berthv1.UpdateNodeRequest{Node: "alpha", SetLabels: map[string]string{"a b": "x", "c": " y"}},
			code: codes.InvalidArgument, words: []string{`"a b"`, `"c"`}},
	}
	for _, tt := range tests {
		before := etcdRevision(t, s)
		eventsBefore := len(nodeEvents(t, s))
		got, err := s.UpdateNode(ctx, tt.req)
		if tt.code != codes.OK {
			wantCode(t, tt.name, err, tt.code, tt.words...)
			if etcdRevision(t, s) != before {
				t.Errorf("%s: a failed update wrote", tt.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		cached, _ := s.cfg.Cache.Node("n1")
		if got.GetMeta().GetVersion() != cached.GetMeta().GetVersion() {
			t.Errorf("%s: returned version %d, the cache holds %d", tt.name, got.GetMeta().GetVersion(), cached.GetMeta().GetVersion())
		}
		if cached.Availability != tt.availability || !maps.Equal(cached.OperatorLabels, tt.operator) || !maps.Equal(cached.Labels, tt.labels) || !maps.Equal(cached.AgentLabels, agent) {
			t.Errorf("%s: node is %v with operator labels %v, labels %v, agent labels %v; want %v, %v, %v, %v",
				tt.name, cached.Availability, cached.OperatorLabels, cached.Labels, cached.AgentLabels, tt.availability, tt.operator, tt.labels, agent)
		}
		events := nodeEvents(t, s)
		if tt.event == "" {
			if etcdRevision(t, s) != before || len(events) != eventsBefore {
				t.Errorf("%s: an update that changes nothing wrote", tt.name)
			}
			continue
		}
		if len(events) != eventsBefore+1 || events[len(events)-1] != tt.event {
			t.Errorf("%s: events %q, want %q last", tt.name, events, tt.event)
		}
	}

	got, err := s.UpdateNode(ctx, &berthv1.UpdateNodeRequest{Node: "beta", SetLabels: map[string]string{"tier": "gold"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"zone": "ap", "tier": "gold"}; !maps.Equal(got.Labels, want) || !maps.Equal(got.AgentLabels, map[string]string{"zone": "ap"}) {
		t.Fatalf("an older node's labels became %v (agent %v), want %v", got.Labels, got.AgentLabels, want)
	}
}
