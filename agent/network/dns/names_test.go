package dns

import (
	"net/netip"
	"slices"
	"testing"

	miekg "github.com/miekg/dns"

	"github.com/berthproject/berth/agent/network/netmap"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// The fixture: namespace "default" holds app shop (networks shop_default
// and shop_back), app blog (blog_default) and the shared network "ext"
// that joins them; namespace "other" has an app shop of its own.
//
//	shop/web     VIP    shop_default (alias www), ext    tasks web1, web2 ready, web3 not
//	shop/db      DNSRR  shop_back (alias database)       db1 ready, db2 not
//	shop/api     VIP    shop_default, shop_back          api1
//	shop/cache   DNSRR  shop_back                        cache1 not ready
//	shop/worker  VIP    shop_back, shop_default          worker1 (networks in that order)
//	shop/pay     VIP    ext                              pay1
//	blog/web     VIP    blog_default                     bweb1
//	blog/reader  VIP    blog_default, ext                reader1
//	other: shop/web VIP shop_default                     oweb1
func fixture() *netmap.Snapshot {
	snap := &netmap.Snapshot{
		Networks: map[string]*berthv1.Network{},
		Services: map[string]*berthv1.NetworkService{},
		Tasks:    map[string]*berthv1.NetworkTask{},
		Nodes:    map[string]*berthv1.NetworkNode{},
	}
	nets := map[string]string{} // "namespace/name" -> id
	network := func(id, ns, app, name, subnet string) {
		snap.Networks[id] = &berthv1.Network{Meta: &berthv1.Meta{Id: id}, Namespace: ns, App: app, Name: name, Subnet: subnet}
		nets[ns+"/"+name] = id
	}
	network("n-shop", "default", "shop", "shop_default", "10.128.1.0/24")
	network("n-back", "default", "shop", "shop_back", "10.128.2.0/24")
	network("n-blog", "default", "blog", "blog_default", "10.128.3.0/24")
	network("n-ext", "default", "", "ext", "10.128.4.0/24")
	network("n-other", "other", "shop", "shop_default", "10.128.5.0/24")

	// attach is "network=address" for tasks and virtual IPs.
	type attach struct{ network, addr string }
	service := func(ns, app, name string, mode berthv1.EndpointMode, aliases map[string][]string, vips ...attach) *berthv1.NetworkService {
		id := ns + "/" + app + "/" + name
		svc := &berthv1.NetworkService{Id: id, Namespace: ns, App: app, Name: name, EndpointMode: mode}
		for _, v := range vips {
			svc.Networks = append(svc.Networks, &berthv1.ServiceNetwork{Network: v.network, Aliases: aliases[v.network]})
			if v.addr != "" {
				svc.VirtualIps = append(svc.VirtualIps, &berthv1.VirtualIP{NetworkId: nets[ns+"/"+v.network], Network: v.network, Address: v.addr})
			}
		}
		snap.Services[id] = svc
		return svc
	}
	task := func(svc *berthv1.NetworkService, id string, slot uint64, ready bool, addrs ...attach) {
		t := &berthv1.NetworkTask{Id: id, ServiceId: svc.GetId(), NodeId: "node1", Slot: slot, Ready: ready}
		for _, a := range addrs {
			t.Networks = append(t.Networks, &berthv1.TaskNetwork{NetworkId: nets[svc.GetNamespace()+"/"+a.network], Network: a.network, Address: a.addr + "/24"})
		}
		snap.Tasks[id] = t
	}
	const vip, dnsrr = berthv1.EndpointMode_ENDPOINT_MODE_UNSPECIFIED, berthv1.EndpointMode_ENDPOINT_MODE_DNSRR

	web := service("default", "shop", "web", vip, map[string][]string{"shop_default": {"www", "WWW2."}},
		attach{"shop_default", "10.128.1.2"}, attach{"ext", "10.128.4.2"})
	task(web, "web1", 1, true, attach{"shop_default", "10.128.1.10"}, attach{"ext", "10.128.4.10"})
	task(web, "web2", 2, true, attach{"shop_default", "10.128.1.11"}, attach{"ext", "10.128.4.11"})
	task(web, "web3", 3, false, attach{"shop_default", "10.128.1.12"}, attach{"ext", "10.128.4.12"})

	db := service("default", "shop", "db", dnsrr, map[string][]string{"shop_back": {"database"}},
		attach{"shop_back", ""})
	task(db, "db1", 1, true, attach{"shop_back", "10.128.2.10"})
	task(db, "db2", 2, false, attach{"shop_back", "10.128.2.11"})

	api := service("default", "shop", "api", berthv1.EndpointMode_ENDPOINT_MODE_VIP, nil,
		attach{"shop_default", "10.128.1.3"}, attach{"shop_back", "10.128.2.3"})
	task(api, "api1", 1, true, attach{"shop_default", "10.128.1.20"}, attach{"shop_back", "10.128.2.20"})

	cache := service("default", "shop", "cache", dnsrr, nil, attach{"shop_back", ""})
	task(cache, "cache1", 1, false, attach{"shop_back", "10.128.2.30"})

	worker := service("default", "shop", "worker", vip, nil,
		attach{"shop_back", "10.128.2.4"}, attach{"shop_default", "10.128.1.4"})
	task(worker, "worker1", 1, true, attach{"shop_back", "10.128.2.40"}, attach{"shop_default", "10.128.1.40"})

	pay := service("default", "shop", "pay", vip, nil, attach{"ext", "10.128.4.5"})
	task(pay, "pay1", 1, true, attach{"ext", "10.128.4.50"})

	bweb := service("default", "blog", "web", vip, nil, attach{"blog_default", "10.128.3.2"})
	task(bweb, "bweb1", 1, true, attach{"blog_default", "10.128.3.10"})

	reader := service("default", "blog", "reader", vip, nil,
		attach{"blog_default", "10.128.3.5"}, attach{"ext", "10.128.4.4"})
	task(reader, "reader1", 1, true, attach{"blog_default", "10.128.3.20"}, attach{"ext", "10.128.4.20"})

	oweb := service("other", "shop", "web", vip, nil, attach{"shop_default", "10.128.5.2"})
	task(oweb, "oweb1", 1, true, attach{"shop_default", "10.128.5.10"})
	return snap
}

func addrs(ss ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestLookup(t *testing.T) {
	ix := NewIndex(fixture())
	unknown := []netip.Addr(nil)
	tests := []struct {
		rule  string
		asker string
		name  string
		qtype uint16
		want  []netip.Addr // nil: the name is not known
	}{
		// VIP: the service's virtual IP on every shared network, the
		// asker's first network first.
		{"vip", "web1", "web", miekg.TypeA, addrs("10.128.1.2", "10.128.4.2")},
		{"vip from one shared network", "api1", "web", miekg.TypeA, addrs("10.128.1.2")},
		{"vip in asker's network order", "api1", "worker", miekg.TypeA, addrs("10.128.1.4", "10.128.2.4")},
		{"vip in asker's network order, reversed", "worker1", "api", miekg.TypeA, addrs("10.128.2.3", "10.128.1.3")},
		{"case and trailing dot", "api1", "WeB.", miekg.TypeA, addrs("10.128.1.2")},
		{"SERVICE.APP", "api1", "web.shop", miekg.TypeA, addrs("10.128.1.2")},
		{"SERVICE.APP case and dot", "api1", "Web.SHOP.", miekg.TypeA, addrs("10.128.1.2")},

		// tasks.SERVICE: ready tasks only, on the shared networks.
		{"tasks", "web1", "tasks.web", miekg.TypeA, addrs("10.128.1.10", "10.128.1.11", "10.128.4.10", "10.128.4.11")},
		{"tasks from one shared network", "api1", "tasks.web", miekg.TypeA, addrs("10.128.1.10", "10.128.1.11")},
		{"tasks.SERVICE.APP", "api1", "tasks.web.shop.", miekg.TypeA, addrs("10.128.1.10", "10.128.1.11")},
		{"tasks with none ready", "api1", "tasks.cache", miekg.TypeA, []netip.Addr{}},

		// DNSRR: ready tasks' addresses.
		{"dnsrr", "api1", "db", miekg.TypeA, addrs("10.128.2.10")},
		{"dnsrr qualified", "api1", "db.shop", miekg.TypeA, addrs("10.128.2.10")},
		{"dnsrr with no ready task is known, empty", "api1", "cache", miekg.TypeA, []netip.Addr{}},
		{"dnsrr not on a shared network", "web1", "db", miekg.TypeA, unknown},

		// Aliases: on their network only.
		{"alias", "api1", "www", miekg.TypeA, addrs("10.128.1.2")},
		{"alias given with case and dot", "api1", "www2", miekg.TypeA, addrs("10.128.1.2")},
		{"alias answers its network's address only", "web2", "www", miekg.TypeA, addrs("10.128.1.2")},
		{"tasks.ALIAS", "api1", "tasks.www", miekg.TypeA, addrs("10.128.1.10", "10.128.1.11")},
		{"alias not on the asker's networks", "reader1", "www", miekg.TypeA, unknown},
		{"alias of a dnsrr service", "worker1", "database", miekg.TypeA, addrs("10.128.2.10")},
		{"alias of a dnsrr service elsewhere", "web1", "database", miekg.TypeA, unknown},

		// Other types: known names have no other records.
		{"AAAA of a known name", "web1", "web", miekg.TypeAAAA, []netip.Addr{}},
		{"MX of a known name", "web1", "web", miekg.TypeMX, []netip.Addr{}},
		{"AAAA of an unknown name", "web1", "example.com", miekg.TypeAAAA, unknown},

		// Isolation between networks and apps.
		{"no shared network", "worker1", "pay", miekg.TypeA, unknown},
		{"own app's service first", "reader1", "web", miekg.TypeA, addrs("10.128.3.2")},
		{"other app not shared", "bweb1", "api", miekg.TypeA, unknown},
		{"other app qualified, not shared", "bweb1", "web.shop", miekg.TypeA, unknown},
		{"own app qualified", "bweb1", "reader.blog", miekg.TypeA, addrs("10.128.3.5")},

		// An external network joins the apps on it.
		{"other app by plain name over ext", "reader1", "pay", miekg.TypeA, addrs("10.128.4.5")},
		{"other app qualified over ext", "reader1", "web.shop", miekg.TypeA, addrs("10.128.4.2")},
		{"other app's tasks over ext", "reader1", "tasks.pay.shop", miekg.TypeA, addrs("10.128.4.50")},
		{"only the shared network's vip", "web1", "reader", miekg.TypeA, addrs("10.128.4.4")},
		{"qualified names do not fall back", "bweb1", "pay.blog", miekg.TypeA, unknown},

		// Namespaces.
		{"namespace's own service", "oweb1", "web", miekg.TypeA, addrs("10.128.5.2")},
		{"other namespace's service", "oweb1", "db", miekg.TypeA, unknown},
		{"other namespace's network", "oweb1", "pay.shop", miekg.TypeA, unknown},

		// Askers and names outside the map.
		{"unknown asker", "nope", "web", miekg.TypeA, unknown},
		{"unknown name", "web1", "example.com.", miekg.TypeA, unknown},
		{"not-ready asker still asks", "web3", "api", miekg.TypeA, addrs("10.128.1.3")},
		{"search domain of another app", "web1", "www.blog", miekg.TypeA, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			got, known := ix.Lookup(tt.asker, tt.name, tt.qtype)
			if known != (tt.want != nil) {
				t.Fatalf("Lookup(%s, %q): known = %v, want %v (addrs %v)", tt.asker, tt.name, known, tt.want != nil, got)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Lookup(%s, %q) = %v, want %v", tt.asker, tt.name, got, tt.want)
			}
		})
	}
}

// An answer shares memory with the index; appending to it must not change
// the next answer.
func TestLookupAnswersStayPut(t *testing.T) {
	ix := NewIndex(fixture())
	got, _ := ix.Lookup("api1", "tasks.web", miekg.TypeA)
	_ = append(got, netip.MustParseAddr("10.9.9.9"))
	again, _ := ix.Lookup("api1", "tasks.web", miekg.TypeA)
	if want := addrs("10.128.1.10", "10.128.1.11"); !slices.Equal(again, want) {
		t.Errorf("second Lookup = %v, want %v", again, want)
	}
}

// The same name in two apps on one shared network: the choice does not
// depend on map order.
func TestLookupAmbiguousIsStable(t *testing.T) {
	snap := fixture()
	// blog/pay on ext too: from shop's web1 "pay" is shop's own; from a
	// task of a third app on ext it is the first app's by name.
	snap.Services["default/blog/pay"] = &berthv1.NetworkService{
		Id: "default/blog/pay", Namespace: "default", App: "blog", Name: "pay",
		Networks:   []*berthv1.ServiceNetwork{{Network: "ext"}},
		VirtualIps: []*berthv1.VirtualIP{{NetworkId: "n-ext", Network: "ext", Address: "10.128.4.6"}},
	}
	snap.Services["default/zoo/gate"] = &berthv1.NetworkService{
		Id: "default/zoo/gate", Namespace: "default", App: "zoo", Name: "gate",
		Networks: []*berthv1.ServiceNetwork{{Network: "ext"}},
	}
	snap.Tasks["gate1"] = &berthv1.NetworkTask{Id: "gate1", ServiceId: "default/zoo/gate",
		Networks: []*berthv1.TaskNetwork{{NetworkId: "n-ext", Network: "ext", Address: "10.128.4.60/24"}}}
	for range 20 {
		ix := NewIndex(snap)
		if got, _ := ix.Lookup("web1", "pay", miekg.TypeA); !slices.Equal(got, addrs("10.128.4.5")) {
			t.Fatalf("from shop: pay = %v, want shop's 10.128.4.5", got)
		}
		if got, _ := ix.Lookup("reader1", "pay", miekg.TypeA); !slices.Equal(got, addrs("10.128.4.6")) {
			t.Fatalf("from blog: pay = %v, want blog's 10.128.4.6", got)
		}
		if got, _ := ix.Lookup("gate1", "pay", miekg.TypeA); !slices.Equal(got, addrs("10.128.4.6")) {
			t.Fatalf("from zoo: pay = %v, want blog's 10.128.4.6 (first app by name)", got)
		}
	}
}

// Compose allows capital letters in service names; DNS names do not tell
// case apart, so a service named serviceA answers to any case of it.
func TestLookupServiceNameCase(t *testing.T) {
	snap := fixture()
	snap.Services["default/shop/serviceA"] = &berthv1.NetworkService{
		Id: "default/shop/serviceA", Namespace: "default", App: "shop", Name: "serviceA",
		Networks:   []*berthv1.ServiceNetwork{{Network: "shop_default"}},
		VirtualIps: []*berthv1.VirtualIP{{NetworkId: "n-shop", Network: "shop_default", Address: "10.128.1.7"}},
	}
	snap.Tasks["a1"] = &berthv1.NetworkTask{Id: "a1", ServiceId: "default/shop/serviceA", Slot: 1, Ready: true,
		Networks: []*berthv1.TaskNetwork{{NetworkId: "n-shop", Network: "shop_default", Address: "10.128.1.70/24"}}}
	ix := NewIndex(snap)
	for _, name := range []string{"serviceA", "servicea", "SERVICEA.", "serviceA.shop", "ServiceA.Shop."} {
		if got, _ := ix.Lookup("api1", name, miekg.TypeA); !slices.Equal(got, addrs("10.128.1.7")) {
			t.Errorf("Lookup(%q) = %v, want 10.128.1.7", name, got)
		}
	}
	if got, _ := ix.Lookup("api1", "tasks.SERVICEa", miekg.TypeA); !slices.Equal(got, addrs("10.128.1.70")) {
		t.Errorf("Lookup(tasks.SERVICEa) = %v, want 10.128.1.70", got)
	}
	// The asker's own name works in any case too.
	if got, _ := ix.Lookup("a1", "WEB", miekg.TypeA); !slices.Equal(got, addrs("10.128.1.2")) {
		t.Errorf("Lookup from serviceA (WEB) = %v, want 10.128.1.2", got)
	}
	for addr, want := range map[string]string{"10.128.1.7": "servicea.shop.", "10.128.1.70": "servicea.1.a1.shop."} {
		if got, ok := ix.LookupPTR("api1", netip.MustParseAddr(addr)); !ok || got != want {
			t.Errorf("LookupPTR(%s) = %q, %v; want %q", addr, got, ok, want)
		}
	}
}

func TestLookupPTR(t *testing.T) {
	ix := NewIndex(fixture())
	tests := []struct {
		asker, addr, want string // want "": none
	}{
		{"api1", "10.128.1.2", "web.shop."},
		{"api1", "10.128.1.10", "web.1.web1.shop."},
		{"api1", "10.128.2.10", "db.1.db1.shop."},
		{"api1", "10.128.2.11", ""}, // db2 is not ready
		{"reader1", "10.128.1.2", ""},
		{"reader1", "10.128.4.2", "web.shop."},
		{"oweb1", "10.128.4.2", ""},
		{"nope", "10.128.1.2", ""},
	}
	for _, tt := range tests {
		got, ok := ix.LookupPTR(tt.asker, netip.MustParseAddr(tt.addr))
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("LookupPTR(%s, %s) = %q, %v; want %q", tt.asker, tt.addr, got, ok, tt.want)
		}
	}
}

func TestReverseAddr(t *testing.T) {
	tests := []struct{ name, want string }{
		{"10.0.128.10.in-addr.arpa.", "10.128.0.10"},
		{"10.0.128.10.IN-ADDR.ARPA", "10.128.0.10"},
		{"0.128.10.in-addr.arpa.", ""},
		{"x.0.128.10.in-addr.arpa.", ""},
		{"web.shop.", ""},
	}
	for _, tt := range tests {
		got, ok := reverseAddr(tt.name)
		if ok != (tt.want != "") || (ok && got.String() != tt.want) {
			t.Errorf("reverseAddr(%q) = %v, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}

func TestNilIndex(t *testing.T) {
	var ix *Index
	if _, known := ix.Lookup("web1", "web", miekg.TypeA); known {
		t.Error("a nil index knows a name")
	}
	if _, known := NewIndex(netmap.Empty).Lookup("web1", "web", miekg.TypeA); known {
		t.Error("the empty map's index knows a name")
	}
}
