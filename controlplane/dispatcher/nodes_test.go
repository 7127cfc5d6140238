package dispatcher

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

func TestRegisterKeepsWhatTheOperatorChose(t *testing.T) {
	ctx := context.Background()
	s, c := newStoreAndCache(t)
	pool, err := NewSubnetPool("10.40.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Store: s, Cache: c, Subnets: pool, Log: slog.New(slog.DiscardHandler)})
	desc := func(labels map[string]string) *berthv1.NodeDescription {
		return &berthv1.NodeDescription{Name: "alpha", Address: "127.0.0.1:7001", Labels: labels}
	}

	cert := joined(t, s, c, "n1", "alpha", map[string]string{"zone": "us", "rack": "r1"})
	first, _, err := d.register(ctx, "n1", cert, desc(map[string]string{"zone": "us", "rack": "r1"}))
	if err != nil {
		t.Fatal(err)
	}
	if first.Availability != berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE || first.Subnet == "" {
		t.Fatalf("a new node is %v with subnet %q, want active with a subnet", first.Availability, first.Subnet)
	}

	// An operator drains the node and sets a label of their own,
	// overriding the agent's zone.
	stored, _ := c.Node("n1")
	op := proto.Clone(stored).(*berthv1.Node)
	op.Availability = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
	op.OperatorLabels = map[string]string{"zone": "eu", "tier": "gold"}
	var txn store.Txn
	txn.Update(store.NodeKey("n1"), op)
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	// The agent comes back with other labels: they are ignored (fixed at
	// join), and said so.
	again, claims, err := d.register(ctx, "n1", cert, desc(map[string]string{"zone": "us", "disk": "ssd"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 1 || !strings.Contains(claims[0], "fixed at join") {
		t.Errorf("claims = %q, want one about the labels", claims)
	}
	tests := []struct {
		name      string
		got, want map[string]string
	}{
		{"agent labels", again.AgentLabels, map[string]string{"zone": "us", "rack": "r1"}},
		{"operator labels", again.OperatorLabels, map[string]string{"zone": "eu", "tier": "gold"}},
		{"labels", again.Labels, map[string]string{"zone": "eu", "rack": "r1", "tier": "gold"}},
	}
	for _, tt := range tests {
		if !maps.Equal(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if again.Availability != berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN {
		t.Errorf("availability = %v after the agent registered again, want drain", again.Availability)
	}
	if again.Subnet != first.Subnet {
		t.Errorf("subnet moved from %s to %s", first.Subnet, again.Subnet)
	}
	if cached, _ := c.Node("n1"); !maps.Equal(cached.Labels, again.Labels) {
		t.Errorf("the cache holds labels %v, want %v", cached.Labels, again.Labels)
	}
}

func TestRegisterSetsRole(t *testing.T) {
	ctx := context.Background()
	servers := []*berthv1.ServerInfo{{Id: "s1", Address: "10.0.0.1:7400"}, {Id: "s2", Address: "[::ffff:10.0.0.2]:7400"}}
	var listErr error
	tests := []struct {
		name    string
		address string
		failed  bool
		want    string
	}{
		{"agent beside a server", "10.0.0.1:7001", false, "manager"},
		{"IPv4 written as IPv6", "10.0.0.2:7001", false, "manager"},
		{"agent on another machine", "10.0.0.3:7001", false, "worker"},
		{"agent listening everywhere", "0.0.0.0:7001", false, "worker"},
		{"servers unknown: the role stays", "10.0.0.3:7001", true, "manager"},
	}
	s, c := newStoreAndCache(t)
	pool, err := NewSubnetPool("10.40.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Store: s, Cache: c, Subnets: pool, Log: slog.New(slog.DiscardHandler),
		Servers: func(context.Context) ([]*berthv1.ServerInfo, error) { return servers, listErr }})
	certs := map[string]*x509.Certificate{}
	for i, tt := range tests {
		listErr = nil
		if tt.failed {
			listErr = errors.New("etcd is away")
		}
		// The last case registers the first case's node again.
		id := fmt.Sprintf("n%d", i)
		if tt.failed {
			id = "n0"
		}
		cert := certs[id]
		if cert == nil {
			cert = joined(t, s, c, id, id, nil)
			certs[id] = cert
		}
		n, _, err := d.register(ctx, id, cert, &berthv1.NodeDescription{Name: id, Address: tt.address})
		if err != nil {
			t.Fatalf("%s: register: %v", tt.name, err)
		}
		if n.Role != tt.want {
			t.Errorf("%s: role = %q, want %q", tt.name, n.Role, tt.want)
		}
	}

	// A node that names a server's address but connects from another
	// machine is a worker.
	listErr = nil
	from := grpcpeer.NewContext(ctx, &grpcpeer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 4000}})
	n8 := joined(t, s, c, "n8", "n8", nil)
	if n, _, err := d.register(from, "n8", n8, &berthv1.NodeDescription{Name: "n8", Address: "10.0.0.1:7001"}); err != nil || n.Role != "worker" {
		t.Errorf("register naming a server's address from 10.0.0.7 = role %q, %v; want worker", n.GetRole(), err)
	}
	local := grpcpeer.NewContext(ctx, &grpcpeer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4000}})
	if n, _, err := d.register(local, "n8", n8, &berthv1.NodeDescription{Name: "n8", Address: "10.0.0.1:7001"}); err != nil || n.Role != "manager" {
		t.Errorf("register naming a server's address over loopback = role %q, %v; want manager", n.GetRole(), err)
	}

	// Without a way to list servers, every node is a worker.
	d = New(Config{Store: s, Cache: c, Subnets: pool, Log: slog.New(slog.DiscardHandler)})
	if n, _, err := d.register(ctx, "n9", joined(t, s, c, "n9", "n9", nil), &berthv1.NodeDescription{Name: "n9", Address: "10.0.0.1:7001"}); err != nil || n.Role != "worker" {
		t.Errorf("register without servers = role %q, %v; want worker", n.GetRole(), err)
	}
}
