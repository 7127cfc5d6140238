package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// TestIncremental applies a sequence of models to one table and checks,
// after each, that the table reads back exactly as a fresh full build of
// the same model, that traffic follows it, and that only the first Apply
// and a change of networks rewrote the whole table.
func TestIncremental(t *testing.T) {
	f := newFixture(t)
	vipY := addr("10.128.2.2")
	vip, vipOnY := hostPort(vipX, port), hostPort(vipY, port)
	on := func(c *container, p uint16) netip.AddrPort { return netip.AddrPortFrom(c.addr, p) }
	netW := Network{ID: "w", Subnet: prefix("10.128.4.0/24")}

	// with adds to the fixture's model (the VIP of x leading to eps) a
	// second VIP, on y, and published ports.
	type extra struct {
		vipY    []*container // nil: no VIP on y; empty: a VIP without endpoints
		ingress []netip.AddrPort
		host    []HostPort
		network bool // another network
	}
	model := func(e extra, eps ...*container) Model {
		m := f.model(eps...)
		if e.vipY != nil {
			v := VIP{Address: vipY}
			for _, c := range e.vipY {
				v.Endpoints = append(v.Endpoints, c.addr)
			}
			m.VIPs = append(m.VIPs, v)
		}
		if e.ingress != nil {
			m.Ingress = []Published{{Protocol: "tcp", Port: 8003, Endpoints: e.ingress}}
		}
		m.HostPorts = e.host
		if e.network {
			m.Networks = append(m.Networks, netW)
		}
		return m
	}
	host8001 := HostPort{Protocol: "tcp", Port: 8001, Target: on(f.a1, 8080)}
	host8002 := HostPort{Protocol: "tcp", Port: 8002, HostIP: uplinkAddr, Target: on(f.a2, 8080)}

	answeredBy := func(from *netNS, target string, n int, want ...string) func(t *testing.T) {
		return func(t *testing.T) {
			t.Helper()
			got, err := ask(from, target, n, dialOK)
			if err != nil {
				t.Fatalf("connect to %s: %v (answers so far %v)\n%s", target, err, got, f.ruleset())
			}
			seen := count(got)
			for name := range seen {
				if !slices.Contains(want, name) {
					t.Fatalf("%d connections to %s answered by %v, want %v only", n, target, seen, want)
				}
			}
			if len(want) > 1 && len(seen) < len(want) {
				t.Fatalf("%d connections to %s answered by %v, want each of %v", n, target, seen, want)
			}
		}
	}
	refused := func(from *netNS, target string) func(t *testing.T) {
		return func(t *testing.T) {
			t.Helper()
			if _, err := ask(from, target, 1, dialOK); !isRefused(err) {
				t.Fatalf("connect to %s: %v, want connection refused\n%s", target, err, f.ruleset())
			}
		}
	}
	outside := func(p string) string { return hostPort(uplinkAddr, p) }

	steps := []struct {
		name  string
		model Model
		full  bool // the whole table is written
		check func(t *testing.T)
	}{
		{"first Apply: VIP with one endpoint", model(extra{}, f.a1), true, answeredBy(f.c.netNS, vip, 5, "a1")},
		{"endpoint added", model(extra{}, f.a1, f.a2), false, answeredBy(f.c.netNS, vip, 40, "a1", "a2")},
		{"endpoint replaced", model(extra{}, f.a2), false, answeredBy(f.c.netNS, vip, 5, "a2")},
		{"last endpoint removed", model(extra{}), false, refused(f.c.netNS, vip)},
		{"endpoints back", model(extra{}, f.a1, f.a2), false, answeredBy(f.c.netNS, vip, 40, "a1", "a2")},
		{"VIP added without endpoints", model(extra{vipY: []*container{}}, f.a1, f.a2), false, refused(f.y.netNS, vipOnY)},
		{"its endpoint ready", model(extra{vipY: []*container{f.y}}, f.a1, f.a2), false, answeredBy(f.y.netNS, vipOnY, 3, "y")},
		{"ingress port added", model(extra{vipY: []*container{f.y}, ingress: []netip.AddrPort{on(f.a1, 8080), on(f.a2, 8080)}}, f.a1, f.a2), false,
			answeredBy(f.outside, outside("8003"), 40, "a1", "a2")},
		{"ingress endpoint removed", model(extra{vipY: []*container{f.y}, ingress: []netip.AddrPort{on(f.a2, 8080)}}, f.a1, f.a2), false,
			answeredBy(f.outside, outside("8003"), 5, "a2")},
		{"host ports added", model(extra{vipY: []*container{f.y}, ingress: []netip.AddrPort{on(f.a2, 8080)}, host: []HostPort{host8001, host8002}}, f.a1, f.a2), false,
			func(t *testing.T) {
				answeredBy(f.outside, outside("8001"), 1, "a1")(t)
				answeredBy(f.outside, outside("8002"), 1, "a2")(t)
			}},
		{"host port removed", model(extra{vipY: []*container{f.y}, ingress: []netip.AddrPort{on(f.a2, 8080)}, host: []HostPort{host8002}}, f.a1, f.a2), false,
			func(t *testing.T) {
				refused(f.outside, outside("8001"))(t)
				answeredBy(f.outside, outside("8002"), 1, "a2")(t)
			}},
		{"ingress port without endpoints", model(extra{vipY: []*container{f.y}, ingress: []netip.AddrPort{}, host: []HostPort{host8002}}, f.a1, f.a2), false,
			refused(f.outside, outside("8003"))},
		{"ingress port and host port removed, VIP loses its endpoint", model(extra{vipY: []*container{}}, f.a1, f.a2), false,
			func(t *testing.T) {
				refused(f.outside, outside("8002"))(t)
				refused(f.y.netNS, vipOnY)(t)
			}},
		{"VIP without endpoints removed", model(extra{}, f.a1, f.a2), false, answeredBy(f.c.netNS, vip, 40, "a1", "a2")},
		{"VIP with endpoints removed, its network kept", Model{NodeRange: nodeRange, Networks: f.model().Networks}, false, nil},
		{"VIP and endpoints in one step", model(extra{vipY: []*container{f.y}}, f.a2), false, answeredBy(f.c.netNS, vip, 5, "a2")},
		{"network added: whole table", model(extra{vipY: []*container{f.y}, network: true}, f.a2), true, answeredBy(f.c.netNS, vip, 5, "a2")},
		{"after the rewrite, incremental again", model(extra{vipY: []*container{f.y}, network: true}, f.a1), false, answeredBy(f.c.netNS, vip, 5, "a1")},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			before := f.table.rewrites
			f.apply(t, s.model)
			if full := f.table.rewrites > before; full != s.full {
				t.Fatalf("whole table written: %v, want %v", full, s.full)
			}
			if got, want := dump(t, f.node, f.table.Name()), freshDump(t, s.model); got != want {
				t.Fatalf("table after the step differs from a fresh build:\n%s", diffLines(got, want))
			}
			if s.check != nil {
				s.check(t)
			}
		})
		if !ok {
			t.FailNow() // later steps build on this one
		}
	}
}

// TestApplyRepairs: a table changed from outside is written whole by the
// next Apply, whether Apply sees the change (the table is gone) or only
// the kernel does (an element it would delete is missing).
func TestApplyRepairs(t *testing.T) {
	requireRoot(t)
	vip2 := addr("10.128.2.2")
	before := Model{NodeRange: nodeRange, Networks: []Network{{ID: "x", Subnet: netX}, {ID: "y", Subnet: netY}}, VIPs: []VIP{
		{Address: vipX, Endpoints: []netip.Addr{addr("10.128.1.5"), addr("10.128.1.6")}},
		{Address: vip2, Endpoints: []netip.Addr{addr("10.128.2.5")}},
	}}
	after := before
	after.VIPs = before.VIPs[:1]

	cases := []struct {
		name   string
		tamper func(t *testing.T, ns *netNS, tb *Table)
	}{
		{"table deleted", func(t *testing.T, ns *netNS, tb *Table) {
			if err := New("node", WithNetNS(ns.fd)).Destroy(); err != nil {
				t.Fatalf("Destroy: %v", err)
			}
		}},
		{"map element deleted", func(t *testing.T, ns *netNS, tb *Table) {
			c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
			if err != nil {
				t.Fatal(err)
			}
			m := vipsMap()
			m.Table = &nftables.Table{Name: tb.Name(), Family: nftables.TableFamilyIPv4}
			if err := c.SetDeleteElements(m, []nftables.SetElement{vipElement(VIP{Address: vip2})}); err != nil {
				t.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				t.Fatalf("delete element: %v", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetNS(t)
			tb := New("node", WithNetNS(ns.fd))
			t.Cleanup(func() { tb.Destroy() })
			if err := tb.Apply(before); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			tc.tamper(t, ns, tb)
			if err := tb.Apply(after); err != nil {
				t.Fatalf("Apply after the table changed: %v", err)
			}
			if tb.rewrites != 2 {
				t.Fatalf("%d whole writes, want 2 (the first Apply and the repair)", tb.rewrites)
			}
			if got, want := dump(t, ns, tb.Name()), freshDump(t, after); got != want {
				t.Fatalf("repaired table differs from a fresh build:\n%s", diffLines(got, want))
			}
		})
	}
}

// freshDump writes m whole into a table of a namespace of its own and
// reads it back.
func freshDump(t *testing.T, m Model) string {
	t.Helper()
	ns := newNetNS(t)
	tb := New("fresh", WithNetNS(ns.fd))
	defer tb.Destroy()
	if err := tb.Apply(m); err != nil {
		t.Fatalf("fresh Apply: %v", err)
	}
	return dump(t, ns, tb.Name())
}

// dump reads a table back from the kernel as text that does not depend
// on the order it was written in: chains by name with their rules, named
// sets with their elements, and every anonymous map shown in the rule
// that uses it (its name is the kernel's choice).
func dump(t *testing.T, ns *netNS, name string) string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	sets, err := c.GetSets(table)
	if err != nil {
		t.Fatalf("list sets of %s: %v", name, err)
	}
	var lines []string
	anonymous := map[string]string{}
	for _, s := range sets {
		elems, err := c.GetSetElements(s)
		if err != nil {
			t.Fatalf("elements of set %s: %v", s.Name, err)
		}
		var es []string
		for _, e := range elems {
			// A verdict comes back as its raw attributes in Val: code
			// and chain name.
			es = append(es, fmt.Sprintf("%x end=%v : %q", e.Key, e.IntervalEnd, e.Val))
		}
		slices.Sort(es)
		body := fmt.Sprintf("key %s data %s interval=%v map=%v { %s }", s.KeyType.Name, s.DataType.Name, s.Interval, s.IsMap, strings.Join(es, ", "))
		if s.Anonymous {
			anonymous[s.Name] = body
			continue
		}
		lines = append(lines, "set "+s.Name+" "+body)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatalf("list chains: %v", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != name {
			continue
		}
		head := "chain " + ch.Name
		if ch.Hooknum != nil {
			head += fmt.Sprintf(" type %s hook %d priority %d", ch.Type, *ch.Hooknum, *ch.Priority)
		}
		lines = append(lines, head)
		rules, err := c.GetRules(table, ch)
		if err != nil {
			t.Fatalf("rules of chain %s: %v", ch.Name, err)
		}
		for i, r := range rules {
			var es []string
			for _, e := range r.Exprs {
				if l, ok := e.(*expr.Lookup); ok {
					cp := *l
					cp.SetID = 0
					if body, ok := anonymous[l.SetName]; ok {
						cp.SetName = body
					}
					e = &cp
				}
				es = append(es, fmt.Sprintf("%T%+v", e, e))
			}
			// The chain's name starts the line so that sorting keeps
			// every rule under its chain and in its place.
			lines = append(lines, fmt.Sprintf("chain %s rule %03d: %s", ch.Name, i, strings.Join(es, " ")))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// diffLines shows the lines only one of got and want has.
func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// TestDiffVIPs checks which table objects each change of a VIP touches.
func TestDiffVIPs(t *testing.T) {
	a, b := addr("10.128.1.2"), addr("10.128.1.3")
	e1, e2 := addr("10.128.1.5"), addr("10.128.1.6")
	served := func(v netip.Addr, eps ...netip.Addr) VIP { return VIP{Address: v, Endpoints: eps} }
	idle := func(v netip.Addr) VIP { return VIP{Address: v} }
	cases := []struct {
		name             string
		old, new         []VIP
		spreaders        []string // "old>new" head names, "-" for none
		mapped, unmapped int
		idled, unidled   int
	}{
		{name: "unchanged", old: []VIP{served(a, e1), idle(b)}, new: []VIP{served(a, e1), idle(b)}},
		{name: "endpoint added", old: []VIP{served(a, e1)}, new: []VIP{served(a, e1, e2)},
			spreaders: []string{"vip-10.128.1.2>vip-10.128.1.2"}},
		{name: "last endpoint gone", old: []VIP{served(a, e1)}, new: []VIP{idle(a)},
			spreaders: []string{"vip-10.128.1.2>-"}, unmapped: 1, idled: 1},
		{name: "first endpoint", old: []VIP{idle(a)}, new: []VIP{served(a, e1)},
			spreaders: []string{"->vip-10.128.1.2"}, mapped: 1, unidled: 1},
		{name: "VIPs added and removed", old: []VIP{served(a, e1)}, new: []VIP{idle(b)},
			spreaders: []string{"vip-10.128.1.2>-"}, unmapped: 1, idled: 1},
	}
	name := func(s *spreader) string {
		if s == nil {
			return "-"
		}
		return s.name
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := diffVIPs(tc.old, tc.new)
			var got []string
			for _, c := range d.spreaders {
				got = append(got, name(c.old)+">"+name(c.new))
			}
			if !slices.Equal(got, tc.spreaders) {
				t.Errorf("spreader changes %v, want %v", got, tc.spreaders)
			}
			if len(d.mapped) != tc.mapped || len(d.unmapped) != tc.unmapped || len(d.idled) != tc.idled || len(d.unidled) != tc.unidled {
				t.Errorf("elements: vips map +%d -%d, no-endpoint set +%d -%d; want +%d -%d, +%d -%d",
					len(d.mapped), len(d.unmapped), len(d.idled), len(d.unidled), tc.mapped, tc.unmapped, tc.idled, tc.unidled)
			}
		})
	}
}
