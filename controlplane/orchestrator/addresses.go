package orchestrator

import (
	"context"
	"fmt"
	"slices"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/ipam"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
)

// Tasks get one address per network of their spec when they are made,
// and services in VIP mode one virtual IP per network. The leader's
// orchestrator alone gives addresses: its pool is rebuilt from the cache
// at the start of each term (and whenever its view of the tasks is), then
// follows what it gives and the tasks that end, so that two tasks never
// get one address, even within one pass.

// rebuildAddresses makes the pool again from what the cache holds.
func (o *Orchestrator) rebuildAddresses() {
	pool, errs := ipam.NewPool(o.cache.Networks(store.NetworksPrefix), o.cache.Services(store.ServicesPrefix), o.cache.Tasks())
	for _, err := range errs {
		o.log.Warn("an address in use does not fit its network; it is not counted", "err", err)
	}
	o.addrs = pool
}

// recoverAddresses rebuilds the pool after a pass failed to write: what it
// gave may be stored in part. The cache first catches up with what was
// written (rev, 0 for nothing), so every address stored is counted.
func (o *Orchestrator) recoverAddresses(ctx context.Context, rev int64) {
	if rev > 0 {
		if err := o.cache.WaitRevision(ctx, rev); err != nil {
			return
		}
	}
	o.rebuildAddresses()
}

// followAddresses frees the addresses of the tasks and services that
// ended, and counts those the events show.
func (o *Orchestrator) followAddresses(events []store.Event) {
	for _, ev := range events {
		switch ev.Kind {
		case store.KindTask:
			t := ev.Object.(*berthv1.Task)
			if ev.Action != store.ActionDelete && ipam.TaskHolds(t) {
				o.addrs.HoldTask(t)
			} else {
				o.addrs.Release(t.GetMeta().GetId())
			}
		case store.KindService:
			if ev.Action == store.ActionDelete {
				o.addrs.Release(ipam.VIPOwner(ev.Object.GetMeta().GetId()))
			}
		case store.KindNetwork:
			if ev.Action == store.ActionDelete {
				o.addrs.RemoveNetwork(ev.Object.GetMeta().GetId())
			}
		}
	}
}

// address gives the tasks of pending that have none their addresses: those
// created by this pass in place, the stored ones in the returned map, to
// be written with the pass's change to them. The tasks that cannot get
// them now (a network that does not exist, a full subnet, a fixed address
// in use) are returned apart with the reason; they stay pending.
func (o *Orchestrator) address(pending []*berthv1.Task, created map[string]*berthv1.Task) (free []*berthv1.Task, held []scheduler.Unplaced, given map[string][]*berthv1.TaskNetwork) {
	free = make([]*berthv1.Task, 0, len(pending))
	for _, t := range pending {
		spec := t.GetSpec().GetNetworks()
		if len(spec) == 0 || len(t.GetNetworks()) > 0 {
			free = append(free, t)
			continue
		}
		id := t.GetMeta().GetId()
		nets, err := o.addressTask(t, spec)
		if err != nil {
			held = append(held, scheduler.Unplaced{TaskID: id, Reason: err.Error()})
			continue
		}
		if c, ok := created[id]; ok {
			c.Networks = nets
		} else {
			if given == nil {
				given = map[string][]*berthv1.TaskNetwork{}
			}
			given[id] = nets
		}
		free = append(free, t)
	}
	return free, held, given
}

func (o *Orchestrator) addressTask(t *berthv1.Task, spec []*berthv1.ServiceNetwork) ([]*berthv1.TaskNetwork, error) {
	nets := make([]*berthv1.Network, len(spec))
	for i, sn := range spec {
		n, ok := o.cache.Network(t.Namespace, sn.GetNetwork())
		if !ok {
			return nil, fmt.Errorf("waiting for network %s, which does not exist: create it with berth network create %s, or apply its app", sn.GetNetwork(), sn.GetNetwork())
		}
		nets[i] = n
	}
	return o.addrs.AssignTask(t.GetMeta().GetId(), spec, nets)
}

// withNetworks gives a stored task the addresses this pass found for it,
// unless it has some already; it reports whether t changed.
func withNetworks(t *berthv1.Task, given map[string][]*berthv1.TaskNetwork) bool {
	nets, ok := given[t.GetMeta().GetId()]
	if !ok || len(t.Networks) > 0 {
		return false
	}
	t.Networks = nets
	return true
}

// keepEndpoint keeps svc's virtual IPs in line with its spec: one per
// network in VIP mode, in the spec's order, the same address for as long
// as the service stays on the network; none in DNSRR mode. A change is
// written before the pass's new tasks, which name the service.
func (o *Orchestrator) keepEndpoint(svc *berthv1.Service, w *writes) {
	id := svc.GetMeta().GetId()
	var want []*berthv1.VirtualIP
	if svc.GetSpec().GetEndpointMode() != berthv1.EndpointMode_ENDPOINT_MODE_DNSRR {
		for _, sn := range svc.GetSpec().GetNetworks() {
			n, ok := o.cache.Network(svc.Namespace, sn.GetNetwork())
			if !ok {
				// Its tasks wait for the network too; the VIP comes with it.
				continue
			}
			v, err := o.addrs.VirtualIP(id, n)
			if err != nil {
				o.log.Warn("no virtual IP for a service", "service", svc.Namespace+"/"+svc.App+"/"+svc.Name, "err", err)
				continue
			}
			want = append(want, v)
		}
	}
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		if !slices.ContainsFunc(want, func(k *berthv1.VirtualIP) bool { return k.NetworkId == v.NetworkId }) {
			o.addrs.ReleaseVirtualIP(id, v.NetworkId)
		}
	}
	if sameVirtualIPs(svc.GetEndpoint().GetVirtualIps(), want) {
		return
	}
	w.endpoints = true
	w.changeService(svc, func(s *berthv1.Service) bool {
		if sameVirtualIPs(s.GetEndpoint().GetVirtualIps(), want) {
			return false
		}
		if len(want) == 0 {
			s.Endpoint = nil
		} else {
			s.Endpoint = &berthv1.ServiceEndpoint{VirtualIps: want}
		}
		return true
	})
}

func sameVirtualIPs(a, b []*berthv1.VirtualIP) bool {
	return slices.EqualFunc(a, b, func(x, y *berthv1.VirtualIP) bool {
		return x.GetNetworkId() == y.GetNetworkId() && x.GetNetwork() == y.GetNetwork() && x.GetAddress() == y.GetAddress()
	})
}
