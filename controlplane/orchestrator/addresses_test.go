package orchestrator

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/durationpb"
)

func (h *harness) putNetwork(n *berthv1.Network) *berthv1.Network {
	h.t.Helper()
	var txn store.Txn
	txn.Put(store.NetworkKey(n.Namespace, n.Name), n)
	h.commit(&txn)
	return n
}

func newNetwork(name, subnet string) *berthv1.Network {
	return &berthv1.Network{Meta: &berthv1.Meta{Id: "net-" + name}, Namespace: "default", App: "app", Name: name, Subnet: subnet}
}

// onNetworks puts svc on the named networks, in order.
func onNetworks(svc *berthv1.Service, names ...string) *berthv1.Service {
	for _, n := range names {
		svc.Spec.Networks = append(svc.Spec.Networks, &berthv1.ServiceNetwork{Network: n})
	}
	return svc
}

// addressOn is t's address (without prefix) on network name; "" for none.
func addressOn(t *berthv1.Task, name string) string {
	for _, n := range t.GetNetworks() {
		if n.GetNetwork() == name {
			p, err := netip.ParsePrefix(n.GetAddress())
			if err != nil {
				return "bad:" + n.GetAddress()
			}
			return p.Addr().String()
		}
	}
	return ""
}

// cached is svc as the cache holds it, nil before it does.
func (h *harness) cached(svc *berthv1.Service) *berthv1.Service {
	s, _ := h.cache.Service(serviceKey(svc))
	return s
}

func vips(svc *berthv1.Service) []string {
	var out []string
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		out = append(out, v.GetNetwork()+"="+v.GetAddress())
	}
	return out
}

func addressed(t *berthv1.Task) bool { return len(t.GetNetworks()) == len(t.GetSpec().GetNetworks()) }

func TestTasksGetOneAddressPerNetwork(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	front := h.putNetwork(newNetwork("app_front", "10.10.0.0/24"))
	back := newNetwork("app_back", "10.20.0.0/24")
	back.Internal = true
	h.putNetwork(back)
	web := h.putService(onNetworks(newService("web", 3), "app_front", "app_back"))
	api := h.putService(onNetworks(newService("api", 2), "app_back"))
	h.waitFor("every task assigned with its addresses", func() bool {
		ws, as := h.tasks(web), h.tasks(api)
		return len(ws) == 3 && len(as) == 2 && every(append(ws, as...), and(assigned, addressed))
	})
	h.waitFor("both services' virtual IPs", func() bool {
		return len(vips(h.cached(web))) == 2 && len(vips(h.cached(api))) == 1
	})
	seen := map[string]string{} // address -> holder
	claim := func(addr, who string) {
		if prev, ok := seen[addr]; ok {
			t.Errorf("%s and %s both got %s", prev, who, addr)
		}
		seen[addr] = who
		last := netip.MustParseAddr(addr).As4()[3]
		if last == 0 || last == 1 || last == 255 {
			t.Errorf("%s got the reserved address %s", who, addr)
		}
	}
	for _, task := range h.tasks(web) {
		want := []*berthv1.TaskNetwork{
			{NetworkId: front.Meta.Id, Network: "app_front"},
			{NetworkId: back.Meta.Id, Network: "app_back", Internal: true},
		}
		if len(task.Networks) != len(want) {
			t.Fatalf("web.%d networks %v, want app_front then app_back", task.Slot, task.Networks)
		}
		for i, w := range want {
			got := task.Networks[i]
			if got.NetworkId != w.NetworkId || got.Network != w.Network || got.Internal != w.Internal || !strings.HasSuffix(got.Address, "/24") {
				t.Errorf("web.%d network %d = %v, want %v with a /24 address", task.Slot, i, got, w)
			}
		}
		claim(addressOn(task, "app_front"), fmt.Sprintf("web.%d", task.Slot))
		claim(addressOn(task, "app_back"), fmt.Sprintf("web.%d", task.Slot))
	}
	for _, task := range h.tasks(api) {
		claim(addressOn(task, "app_back"), fmt.Sprintf("api.%d", task.Slot))
	}
	for _, v := range h.stored(web).GetEndpoint().GetVirtualIps() {
		claim(v.Address, "web's virtual IP")
	}
	for _, v := range h.stored(api).GetEndpoint().GetVirtualIps() {
		claim(v.Address, "api's virtual IP")
	}
	if got := h.stored(web).GetEndpoint().GetVirtualIps(); got[0].Network != "app_front" || got[0].NetworkId != front.Meta.Id || got[1].Network != "app_back" {
		t.Errorf("web's virtual IPs %v are not in the order of its networks", got)
	}
}

func TestVirtualIPsFollowTheSpec(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	h.putNetwork(newNetwork("app_front", "10.10.0.0/24"))
	h.putNetwork(newNetwork("app_back", "10.20.0.0/24"))
	svc := onNetworks(newService("web", 1), "app_front", "app_back")
	svc = runningService(h, withUpdate(svc, &berthv1.UpdateConfig{Order: berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST}))
	h.waitFor("two virtual IPs", func() bool { return len(vips(h.cached(svc))) == 2 })
	before := vips(h.cached(svc))

	// An update (a new image) and an apply that changes nothing keep them.
	svc = h.apply(svc, "busybox:2")
	h.waitFor("the new version's task", func() bool {
		return countOf(h.tasks(svc), and(image("busybox:2"), assigned)) == 1
	})
	svc = h.changeService(h.stored(svc), func(s *berthv1.Service) { s.ChangeCause = "apply" })
	if got := vips(h.stored(svc)); !slices.Equal(got, before) {
		t.Fatalf("virtual IPs %v after an update, want %v", got, before)
	}

	// Leaving a network drops its virtual IP and keeps the other's.
	svc = h.changeService(h.stored(svc), func(s *berthv1.Service) { s.Spec.Networks = s.Spec.Networks[1:] })
	h.waitFor("one virtual IP", func() bool { return slices.Equal(vips(h.cached(svc)), before[1:]) })

	// DNSRR has none.
	h.changeService(h.stored(svc), func(s *berthv1.Service) {
		s.Spec.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_DNSRR
	})
	h.waitFor("no virtual IP", func() bool { return h.cached(svc).GetEndpoint() == nil })
}

func TestTaskWaitsForAMissingNetwork(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	svc := h.putService(onNetworks(newService("web", 1), "shared"))
	h.waitFor("a pending task that names the network", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 1 && pending(ts[0]) && strings.Contains(ts[0].GetStatus().GetMessage(), "network shared")
	})
	if msg := h.tasks(svc)[0].GetStatus().GetMessage(); !strings.Contains(msg, "berth network create shared") {
		t.Errorf("message %q does not say how to make the network", msg)
	}
	n := newNetwork("shared", "10.30.0.0/24")
	n.App = ""
	h.putNetwork(n)
	h.waitFor("the task assigned with an address", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 1 && assigned(ts[0]) && addressOn(ts[0], "shared") != ""
	})
	h.waitFor("the virtual IP", func() bool { return len(vips(h.cached(svc))) == 1 })
}

func TestFixedAddressAndFullSubnet(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	h.putNetwork(newNetwork("app_front", "10.10.0.0/24"))
	h.putNetwork(newNetwork("app_tiny", "10.40.0.0/30")) // one address
	fixed := newService("db", 1)
	fixed.Spec.Networks = []*berthv1.ServiceNetwork{{Network: "app_front", Ipv4Address: "10.10.0.50"}}
	fixed = h.putService(fixed)
	tiny := onNetworks(newService("crowd", 2), "app_tiny")
	tiny.Spec.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_DNSRR
	tiny = h.putService(tiny)
	h.waitFor("db addressed, one crowd task addressed and one waiting", func() bool {
		ts := h.tasks(tiny)
		return len(h.tasks(fixed)) == 1 && assigned(h.tasks(fixed)[0]) &&
			len(ts) == 2 && countOf(ts, and(assigned, addressed)) == 1 &&
			countOf(ts, func(t *berthv1.Task) bool {
				return pending(t) && t.GetStatus().GetMessage() == "network app_tiny has no free address (subnet /30 holds 1)"
			}) == 1
	})
	if got := h.tasks(fixed)[0].Networks[0].Address; got != "10.10.0.50/24" {
		t.Errorf("db's address is %s, want its ipv4_address 10.10.0.50/24", got)
	}
	// Once the addressed task ends and is not replaced, the other gets
	// the address.
	ts := h.tasks(tiny)
	var holder *berthv1.Task
	for _, task := range ts {
		if addressed(task) {
			holder = task
		}
	}
	h.changeService(h.stored(tiny), func(s *berthv1.Service) {
		s.Spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_NONE
	})
	h.report(berthv1.TaskState_TASK_STATE_FAILED, holder)
	h.waitFor("the waiting task addressed", func() bool {
		for _, task := range h.tasks(tiny) {
			if task.GetMeta().GetId() != holder.GetMeta().GetId() && assigned(task) && addressOn(task, "app_tiny") == "10.40.0.2" {
				return true
			}
		}
		return false
	})
}

// TestFreedAddressesComeBackLate fails a task again and again: each
// replacement gets the next address, and a freed one only once the cursor
// went round the subnet.
func TestFreedAddressesComeBackLate(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	h.putNetwork(newNetwork("app_small", "10.50.0.0/29")) // .2 to .6
	svc := onNetworks(newService("flaky", 1), "app_small")
	svc.Spec.RestartPolicy.Delay = durationpb.New(0)
	svc = h.putService(svc)
	h.waitFor("the virtual IP", func() bool { return len(vips(h.cached(svc))) == 1 })
	if got := vips(h.cached(svc)); got[0] != "app_small=10.50.0.2" {
		t.Fatalf("virtual IP %v, want the first address 10.50.0.2", got)
	}
	want := []string{"10.50.0.3", "10.50.0.4", "10.50.0.5", "10.50.0.6", "10.50.0.3", "10.50.0.4"}
	done := map[string]bool{}
	for i, addr := range want {
		var current *berthv1.Task
		h.waitFor(fmt.Sprintf("task %d assigned", i+1), func() bool {
			current = nil
			for _, task := range h.tasks(svc) {
				if assigned(task) && !done[task.GetMeta().GetId()] {
					current = task
				}
			}
			return current != nil
		})
		done[current.GetMeta().GetId()] = true
		if got := addressOn(current, "app_small"); got != addr {
			t.Fatalf("task %d got %s, want %s\n%s", i+1, got, addr, h.dump())
		}
		h.report(berthv1.TaskState_TASK_STATE_FAILED, current)
	}
}

// TestRollingUpdateGivesNewAddresses replaces tasks start-first: the new
// ones get new addresses while the old still hold theirs.
func TestRollingUpdateGivesNewAddresses(t *testing.T) {
	h := newHarness(t)
	h.putNode(readyNode("n1", nil))
	h.putNetwork(newNetwork("app_front", "10.10.0.0/24"))
	svc := onNetworks(newService("web", 2), "app_front")
	svc = runningService(h, withUpdate(svc, &berthv1.UpdateConfig{Parallelism: 2, Order: berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST}))
	old := h.tasks(svc)
	svc = h.apply(svc, "busybox:2")
	h.waitFor("both replacements assigned beside the old tasks", func() bool {
		ts := h.tasks(svc)
		return len(ts) == 4 && countOf(ts, and(image("busybox:2"), assigned)) == 2 && countOf(ts, and(running, wantRun)) == 2
	})
	seen := map[string]bool{}
	for _, task := range h.tasks(svc) {
		a := addressOn(task, "app_front")
		if a == "" || seen[a] {
			t.Fatalf("address %q given twice or not at all:\n%s", a, h.dump())
		}
		seen[a] = true
	}
	for _, o := range old {
		cur, _ := h.cache.Task(o.GetMeta().GetId())
		if addressOn(cur, "app_front") != addressOn(o, "app_front") {
			t.Errorf("task %s's address changed to %s while it runs", o.GetMeta().GetId(), addressOn(cur, "app_front"))
		}
	}
}
