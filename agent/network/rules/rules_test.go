package rules

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"

	"github.com/berthproject/berth/agent/network/netmap"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// TestMain fails the package if a goroutine outlives the tests: the lab
// starts servers and namespace threads that must all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	addr   = netip.MustParseAddr
	prefix = netip.MustParsePrefix
	ap     = netip.MustParseAddrPort
)

func network(id, subnet string, internal bool) *berthv1.Network {
	return &berthv1.Network{Meta: &berthv1.Meta{Id: id}, Name: id, Subnet: subnet, Internal: internal}
}

func task(id, service string, ready bool, nets ...string) *berthv1.NetworkTask {
	t := &berthv1.NetworkTask{Id: id, ServiceId: service, Ready: ready}
	for i := 0; i+1 < len(nets); i += 2 {
		t.Networks = append(t.Networks, &berthv1.TaskNetwork{NetworkId: nets[i], Network: nets[i], Address: nets[i+1]})
	}
	return t
}

func snapshot(nets []*berthv1.Network, svcs []*berthv1.NetworkService, tasks []*berthv1.NetworkTask) *netmap.Snapshot {
	s := &netmap.Snapshot{
		Networks: map[string]*berthv1.Network{},
		Services: map[string]*berthv1.NetworkService{},
		Tasks:    map[string]*berthv1.NetworkTask{},
		Nodes:    map[string]*berthv1.NetworkNode{},
	}
	for _, n := range nets {
		s.Networks[n.GetMeta().GetId()] = n
	}
	for _, sv := range svcs {
		s.Services[sv.GetId()] = sv
	}
	for _, t := range tasks {
		s.Tasks[t.GetId()] = t
	}
	return s
}

func TestFromMap(t *testing.T) {
	front := network("front", "10.128.1.0/24", false)
	back := network("back", "10.128.2.0/24", true)
	web := &berthv1.NetworkService{
		Id: "web", Name: "web",
		Networks: []*berthv1.ServiceNetwork{{Network: "front"}, {Network: "back"}},
		VirtualIps: []*berthv1.VirtualIP{
			{NetworkId: "front", Network: "front", Address: "10.128.1.2"},
			{NetworkId: "back", Network: "back", Address: "10.128.2.2"},
		},
		Ports: []*berthv1.PortSpec{
			{Target: 80, Published: 8080}, // ingress by default
			{Target: 443, Published: 8443, Protocol: "UDP", Mode: berthv1.PublishMode_PUBLISH_MODE_INGRESS}, // protocol case
			{Target: 81, Published: 9081, Mode: berthv1.PublishMode_PUBLISH_MODE_HOST},                      // host: from local
			{Target: 82}, // not published
		},
	}
	webTasks := []*berthv1.NetworkTask{
		task("w2", "web", true, "front", "10.128.1.6/24", "back", "10.128.2.6/24"),
		task("w1", "web", true, "front", "10.128.1.5/24", "back", "10.128.2.5/24"),
		task("w3", "web", false, "front", "10.128.1.7/24", "back", "10.128.2.7/24"),
	}
	dnsrr := &berthv1.NetworkService{
		Id: "db", Name: "db", EndpointMode: berthv1.EndpointMode_ENDPOINT_MODE_DNSRR,
		Networks: []*berthv1.ServiceNetwork{{Network: "back"}},
		Ports:    []*berthv1.PortSpec{{Target: 5432, Published: 5432}},
	}
	dbTask := task("d1", "db", true, "back", "10.128.2.9/24")

	cases := []struct {
		name  string
		snap  *netmap.Snapshot
		local []Local
		want  Model
	}{
		{
			name: "empty",
			snap: netmap.Empty,
			want: Model{NodeRange: nodeRange},
		},
		{
			name: "networks sorted by subnet, bad subnet left out",
			snap: snapshot([]*berthv1.Network{back, front, network("bad", "nonsense", false)}, nil, nil),
			want: Model{NodeRange: nodeRange, Networks: []Network{
				{ID: "front", Subnet: prefix("10.128.1.0/24")},
				{ID: "back", Subnet: prefix("10.128.2.0/24"), Internal: true},
			}},
		},
		{
			name: "VIP per network with the ready tasks' addresses there, ingress ports on the first network",
			snap: snapshot([]*berthv1.Network{front, back}, []*berthv1.NetworkService{web}, webTasks),
			want: Model{
				NodeRange: nodeRange,
				Networks: []Network{
					{ID: "front", Subnet: prefix("10.128.1.0/24")},
					{ID: "back", Subnet: prefix("10.128.2.0/24"), Internal: true},
				},
				VIPs: []VIP{
					{Address: addr("10.128.1.2"), Endpoints: []netip.Addr{addr("10.128.1.5"), addr("10.128.1.6")}},
					{Address: addr("10.128.2.2"), Endpoints: []netip.Addr{addr("10.128.2.5"), addr("10.128.2.6")}},
				},
				Ingress: []Published{
					{Protocol: "tcp", Port: 8080, Endpoints: []netip.AddrPort{ap("10.128.1.5:80"), ap("10.128.1.6:80")}},
					{Protocol: "udp", Port: 8443, Endpoints: []netip.AddrPort{ap("10.128.1.5:443"), ap("10.128.1.6:443")}},
				},
			},
		},
		{
			name: "no ready task: VIP and ingress port kept, without endpoints",
			snap: snapshot([]*berthv1.Network{front}, []*berthv1.NetworkService{web}, webTasks[2:]),
			want: Model{
				NodeRange: nodeRange,
				Networks:  []Network{{ID: "front", Subnet: prefix("10.128.1.0/24")}},
				VIPs:      []VIP{{Address: addr("10.128.1.2")}, {Address: addr("10.128.2.2")}},
				Ingress:   []Published{{Protocol: "tcp", Port: 8080}, {Protocol: "udp", Port: 8443}},
			},
		},
		{
			name: "DNSRR service: no VIP, ingress port still published",
			snap: snapshot([]*berthv1.Network{back}, []*berthv1.NetworkService{dnsrr}, []*berthv1.NetworkTask{dbTask}),
			want: Model{
				NodeRange: nodeRange,
				Networks:  []Network{{ID: "back", Subnet: prefix("10.128.2.0/24"), Internal: true}},
				Ingress:   []Published{{Protocol: "tcp", Port: 5432, Endpoints: []netip.AddrPort{ap("10.128.2.9:5432")}}},
			},
		},
		{
			name: "two services claim one ingress port: the lower id keeps it",
			snap: snapshot(nil, []*berthv1.NetworkService{
				{Id: "b", Ports: []*berthv1.PortSpec{{Target: 2, Published: 80}}},
				{Id: "a", Ports: []*berthv1.PortSpec{{Target: 1, Published: 80}}},
			}, []*berthv1.NetworkTask{task("ta", "a", true, "n", "10.0.0.1/24"), task("tb", "b", true, "n", "10.0.0.2/24")}),
			want: Model{NodeRange: nodeRange, Ingress: []Published{
				{Protocol: "tcp", Port: 80, Endpoints: []netip.AddrPort{ap("10.0.0.1:1")}},
			}},
		},
		{
			name: "host ports of local containers go to their first address",
			snap: netmap.Empty,
			local: []Local{
				{ID: "c2", Addresses: []netip.Addr{addr("10.128.1.9"), addr("10.128.2.9")}, HostPorts: []Port{
					{Protocol: "udp", Published: 53, Target: 5353},
					{Published: 8000, Target: 80, HostIP: addr("192.0.2.1")},
				}},
				{ID: "c1", Addresses: []netip.Addr{addr("10.128.1.8")}, HostPorts: []Port{{Protocol: "tcp", Published: 8000, Target: 80}}},
				{ID: "no-address", HostPorts: []Port{{Published: 1, Target: 1}}},
			},
			want: Model{NodeRange: nodeRange, HostPorts: []HostPort{
				{Protocol: "tcp", Port: 8000, Target: ap("10.128.1.8:80")},
				{Protocol: "tcp", Port: 8000, HostIP: addr("192.0.2.1"), Target: ap("10.128.1.9:80")},
				{Protocol: "udp", Port: 53, Target: ap("10.128.1.9:5353")},
			}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := FromMap(tc.snap, nodeRange, tc.local)
			if !got.Equal(tc.want.Normalize()) {
				t.Fatalf("FromMap:\n got %+v\nwant %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("FromMap made an invalid model: %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		m    Model
	}{
		{"IPv6 VIP", Model{VIPs: []VIP{{Address: addr("fd00::1")}}}},
		{"unknown protocol", Model{Ingress: []Published{{Protocol: "icmp", Port: 1}}}},
		{"port 0", Model{HostPorts: []HostPort{{Protocol: "tcp", Target: ap("10.0.0.1:1")}}}},
		{"no target", Model{HostPorts: []HostPort{{Protocol: "tcp", Port: 1}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Normalize().Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
		})
	}
}

func TestIntervals(t *testing.T) {
	got := intervals([]netip.Prefix{prefix("10.1.0.0/24"), prefix("10.0.0.0/16"), prefix("10.2.0.0/16"), prefix("10.1.0.0/16"), prefix("255.0.0.0/8")})
	want := []nftables.SetElement{
		{Key: []byte{10, 0, 0, 0}}, {Key: []byte{10, 3, 0, 0}, IntervalEnd: true},
		{Key: []byte{255, 0, 0, 0}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("intervals:\n got %v\nwant %v", got, want)
	}
}

// The real tests' networks: x and y are two networks, z an internal one.
// On x, a1 and a2 serve behind the VIP, c is a client.
var (
	netX = prefix("10.128.1.0/24")
	netY = prefix("10.128.2.0/24")
	netZ = prefix("10.128.3.0/24")
	vipX = addr("10.128.1.2")
)

type fixture struct {
	*lab
	a1, a2, c, y, z *container
}

const port = "8080"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	requireRoot(t)
	l := newLab(t)
	f := &fixture{
		lab: l,
		a1:  l.addContainer(t, "a1", addr("10.128.1.5"), netX, true),
		a2:  l.addContainer(t, "a2", addr("10.128.1.6"), netX, true),
		c:   l.addContainer(t, "c", addr("10.128.1.7"), netX, true),
		y:   l.addContainer(t, "y", addr("10.128.2.5"), netY, true),
		// z is on an internal network, which has no default route; it has
		// one here so that the table, not the missing route, must stop it.
		z: l.addContainer(t, "z", addr("10.128.3.5"), netZ, true),
	}
	for _, c := range []*container{f.a1, f.a2, f.c, f.y, f.z} {
		serve(t, c.netNS, ":"+port, c.name)
	}
	serve(t, l.outside, ":"+port, "outside")
	serve(t, l.node, ":9999", "node")
	l.table = New(t.Name(), WithNetNS(l.node.fd))
	t.Cleanup(func() {
		if err := l.table.Destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return f
}

// model is the fixture's cluster with the VIP of x leading to eps.
func (f *fixture) model(eps ...*container) Model {
	m := Model{
		NodeRange: nodeRange,
		Networks: []Network{
			{ID: "x", Subnet: netX}, {ID: "y", Subnet: netY}, {ID: "z", Subnet: netZ, Internal: true},
		},
		VIPs: []VIP{{Address: vipX}},
	}
	for _, c := range eps {
		m.VIPs[0].Endpoints = append(m.VIPs[0].Endpoints, c.addr)
	}
	return m
}

func (f *fixture) apply(t *testing.T, m Model) {
	t.Helper()
	if err := f.table.Apply(m); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func hostPort(a netip.Addr, p string) string { return a.String() + ":" + p }

func count(names []string) map[string]int {
	n := map[string]int{}
	for _, s := range names {
		n[s]++
	}
	return n
}

func TestVIP(t *testing.T) {
	f := newFixture(t)
	vip := hostPort(vipX, port)

	f.apply(t, f.model(f.a1, f.a2))
	got, err := ask(f.c.netNS, vip, 40, dialOK)
	if err != nil {
		t.Fatalf("connect to the VIP: %v (answers so far %v)\n%s", err, got, f.ruleset())
	}
	if n := count(got); n["a1"] == 0 || n["a2"] == 0 || n["a1"]+n["a2"] != 40 {
		t.Fatalf("40 connections to the VIP answered by %v, want both endpoints and nobody else", n)
	}
	// Every port of the VIP leads to the same port of an endpoint.
	serve(t, f.a1.netNS, ":8081", "a1:8081")
	serve(t, f.a2.netNS, ":8081", "a2:8081")
	if got, err := ask(f.c.netNS, hostPort(vipX, "8081"), 1, dialOK); err != nil || (got[0] != "a1:8081" && got[0] != "a2:8081") {
		t.Fatalf("VIP on another port: got %v, %v", got, err)
	}

	t.Run("endpoint removed", func(t *testing.T) {
		f.apply(t, f.model(f.a1))
		got, err := ask(f.c.netNS, vip, 20, dialOK)
		if err != nil {
			t.Fatalf("connect to the VIP: %v\n%s", err, f.ruleset())
		}
		if n := count(got); n["a1"] != 20 {
			t.Fatalf("20 connections answered by %v, want a1 only", n)
		}
	})

	t.Run("hairpin: an endpoint reaches itself through the VIP", func(t *testing.T) {
		f.apply(t, f.model(f.a1))
		f.mustReach(t, f.a1.netNS, vip, "a1")
	})

	t.Run("no endpoint: refused", func(t *testing.T) {
		f.apply(t, f.model())
		if _, err := ask(f.c.netNS, vip, 1, dialOK); !isRefused(err) {
			t.Fatalf("connect to a VIP without endpoints: %v, want connection refused\n%s", err, f.ruleset())
		}
	})
}

func TestIsolation(t *testing.T) {
	f := newFixture(t)
	f.apply(t, f.model(f.a1, f.a2))

	t.Run("own network", func(t *testing.T) {
		f.mustReach(t, f.c.netNS, hostPort(f.a1.addr, port), "a1")
	})
	t.Run("other network", func(t *testing.T) {
		f.mustBeDropped(t, f.c.netNS, hostPort(f.y.addr, port))
		f.mustBeDropped(t, f.y.netNS, hostPort(f.a1.addr, port))
		f.mustBeDropped(t, f.y.netNS, hostPort(vipX, port))
	})
	t.Run("outside the cluster, masqueraded", func(t *testing.T) {
		// The outside has no route to the containers: an answer proves the
		// masquerade.
		f.mustReach(t, f.c.netNS, hostPort(outsideAddr, port), "outside")
	})
	t.Run("internal network has no way out", func(t *testing.T) {
		f.mustBeDropped(t, f.z.netNS, hostPort(outsideAddr, port))
	})
	t.Run("nobody outside reaches a container directly", func(t *testing.T) {
		err := f.outside.h.RouteAdd(&netlink.Route{Dst: ipNet(netX), Gw: uplinkAddr.AsSlice()})
		if err != nil {
			t.Fatalf("route in outside: %v", err)
		}
		f.mustBeDropped(t, f.outside, hostPort(f.a1.addr, port))
	})
	t.Run("containers cannot call the node", func(t *testing.T) {
		f.mustReach(t, f.outside, hostPort(uplinkAddr, "9999"), "node")
		f.mustBeDropped(t, f.c.netNS, hostPort(nodeAddr, "9999"))
		f.mustBeDropped(t, f.c.netNS, hostPort(gateway, "9999"))
	})
}

func TestPublished(t *testing.T) {
	f := newFixture(t)
	m := f.model(f.a1, f.a2)
	m.HostPorts = []HostPort{
		{Protocol: "tcp", Port: 8001, Target: netip.AddrPortFrom(f.a1.addr, 8080)},
		{Protocol: "tcp", Port: 8002, HostIP: uplinkAddr, Target: netip.AddrPortFrom(f.a2.addr, 8080)},
	}
	m.Ingress = []Published{{Protocol: "tcp", Port: 8003, Endpoints: []netip.AddrPort{
		netip.AddrPortFrom(f.a1.addr, 8080), netip.AddrPortFrom(f.a2.addr, 8080),
	}}}
	f.apply(t, m)

	t.Run("host port from outside", func(t *testing.T) {
		f.mustReach(t, f.outside, hostPort(uplinkAddr, "8001"), "a1")
	})
	t.Run("host port from the node", func(t *testing.T) {
		f.mustReach(t, f.node, "127.0.0.1:8001", "a1")
		f.mustReach(t, f.node, hostPort(nodeAddr, "8001"), "a1")
	})
	t.Run("host port from a container", func(t *testing.T) {
		f.mustReach(t, f.y.netNS, hostPort(nodeAddr, "8001"), "a1")
		f.mustReach(t, f.a1.netNS, hostPort(nodeAddr, "8001"), "a1") // hairpin
	})
	t.Run("host port bound to one address", func(t *testing.T) {
		f.mustReach(t, f.outside, hostPort(uplinkAddr, "8002"), "a2")
		if _, err := ask(f.node, hostPort(nodeAddr, "8002"), 1, dialOK); !isRefused(err) {
			t.Fatalf("host port bound to %s, reached on %s: %v, want refused (nothing listens)", uplinkAddr, nodeAddr, err)
		}
	})
	t.Run("ingress", func(t *testing.T) {
		for _, from := range []*netNS{f.outside, f.node} {
			target := hostPort(uplinkAddr, "8003")
			if from == f.node {
				target = "127.0.0.1:8003"
			}
			got, err := ask(from, target, 10, dialOK)
			if err != nil {
				t.Fatalf("connect to the ingress port %s: %v\n%s", target, err, f.ruleset())
			}
			for _, n := range got {
				if n != "a1" && n != "a2" {
					t.Fatalf("ingress port answered by %q, want a1 or a2", n)
				}
			}
		}
	})
}

// TestTables checks what the Table itself promises: tables of two nodes in
// one namespace live side by side, Destroy removes only its own, and an
// Apply of the model already applied does nothing.
func TestTables(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t)
	a, b := New("node-a", WithNetNS(ns.fd)), New("node-b", WithNetNS(ns.fd))
	if a.Name() == b.Name() || len(a.Name()) != len("berth-")+8 {
		t.Fatalf("table names %q and %q", a.Name(), b.Name())
	}
	t.Cleanup(func() { a.Destroy(); b.Destroy() })
	m := Model{NodeRange: nodeRange, Networks: []Network{{ID: "x", Subnet: netX}}, VIPs: []VIP{{Address: vipX, Endpoints: []netip.Addr{addr("10.128.1.5")}}}}
	for _, tb := range []*Table{a, b} {
		if err := tb.Apply(m); err != nil {
			t.Fatalf("Apply %s: %v", tb.Name(), err)
		}
	}
	if err := a.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := a.Destroy(); err != nil {
		t.Fatalf("Destroy of a missing table: %v", err)
	}
	if exists(t, ns, a) || !exists(t, ns, b) {
		t.Fatalf("after destroying %s: exists %v, %s exists %v", a.Name(), exists(t, ns, a), b.Name(), exists(t, ns, b))
	}

	// Another handle on b's table deletes it behind b's back: b, which has
	// applied m already, must not write it again.
	if err := New("node-b", WithNetNS(ns.fd)).Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := b.Apply(m); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if exists(t, ns, b) {
		t.Fatal("Apply of the last applied model wrote the table")
	}
	m.VIPs[0].Endpoints = nil
	if err := b.Apply(m); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !exists(t, ns, b) {
		t.Fatal("Apply of a new model did not write the table")
	}
}

func exists(t *testing.T, ns *netNS, tb *Table) bool {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	for _, x := range tables {
		if x.Name == tb.Name() {
			return true
		}
	}
	return false
}

// BenchmarkApply writes a table of 100 VIP services of 10 endpoints each,
// whole: the table forgets what it applied before every iteration, as
// after an error, and one endpoint changes so no Apply is skipped.
func BenchmarkApply(b *testing.B) {
	requireRoot(b)
	ns := newNetNS(b)
	tb := New("bench", WithNetNS(ns.fd))
	b.Cleanup(func() { tb.Destroy() })
	m := benchModel()
	b.ResetTimer()
	for i := range b.N {
		m.VIPs[0].Endpoints[0] = netip.AddrFrom4([4]byte{10, 128, 0, byte(100 + i%2)})
		tb.mu.Lock()
		tb.last = nil
		tb.mu.Unlock()
		if err := tb.Apply(m); err != nil {
			b.Fatalf("Apply: %v", err)
		}
	}
	if tb.rewrites != b.N {
		b.Fatalf("%d whole writes in %d Applies", tb.rewrites, b.N)
	}
}

// BenchmarkApplyOneEndpointChange changes one endpoint of one of 100 VIP
// services of 10 endpoints each, as a task's readiness does: the table
// is already written, and every Apply writes only the change.
func BenchmarkApplyOneEndpointChange(b *testing.B) {
	requireRoot(b)
	ns := newNetNS(b)
	tb := New("bench", WithNetNS(ns.fd))
	b.Cleanup(func() { tb.Destroy() })
	m := benchModel()
	if err := tb.Apply(m); err != nil {
		b.Fatalf("Apply: %v", err)
	}
	b.ResetTimer()
	for i := range b.N {
		s := i % len(m.VIPs)
		m.VIPs[s].Endpoints[0] = netip.AddrFrom4([4]byte{10, byte(128 + s/256), byte(s % 256), byte(100 + (i/len(m.VIPs))%2)})
		if err := tb.Apply(m); err != nil {
			b.Fatalf("Apply: %v", err)
		}
	}
	if tb.rewrites != 1 {
		b.Fatalf("%d whole writes, want the first only", tb.rewrites)
	}
}

// benchModel is 100 VIP services of 10 endpoints each, one network each.
func benchModel() Model {
	m := Model{NodeRange: nodeRange}
	for s := range 100 {
		n := prefix(fmt.Sprintf("10.%d.%d.0/24", 128+s/256, s%256))
		m.Networks = append(m.Networks, Network{ID: fmt.Sprint(s), Subnet: n})
		v := VIP{Address: n.Addr().Next().Next()}
		for e := range 10 {
			v.Endpoints = append(v.Endpoints, netip.AddrFrom4([4]byte{10, byte(128 + s/256), byte(s % 256), byte(10 + e)}))
		}
		m.VIPs = append(m.VIPs, v)
	}
	return m
}

// TestNATToContainerWithoutDefaultRoute: a container on an internal
// network only has no default route. Connections the table masquerades
// toward it (its own VIP, a host port) come from the gateway its veth
// answers on, so its answers still find their way back.
func TestNATToContainerWithoutDefaultRoute(t *testing.T) {
	requireRoot(t)
	l := newLab(t)
	w := l.addContainer(t, "w", addr("10.128.3.5"), netZ, false)
	serve(t, w.netNS, ":"+port, "w")
	l.table = New(t.Name(), WithNetNS(l.node.fd))
	t.Cleanup(func() {
		if err := l.table.Destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	vipZ := addr("10.128.3.2")
	m := Model{
		NodeRange: nodeRange,
		Networks:  []Network{{ID: "z", Subnet: netZ, Internal: true}},
		VIPs:      []VIP{{Address: vipZ, Endpoints: []netip.Addr{w.addr}}},
		HostPorts: []HostPort{{Protocol: "tcp", Port: 8005, Target: netip.AddrPortFrom(w.addr, 8080)}},
	}
	if err := l.table.Apply(m); err != nil {
		t.Fatal(err)
	}
	l.mustReach(t, w.netNS, hostPort(vipZ, port), "w")               // hairpin
	l.mustReach(t, l.node, hostPort(addr("127.0.0.1"), "8005"), "w") // host port from the node
}
