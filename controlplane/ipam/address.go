package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// ErrNoAddress says a network's subnet has no free address left.
var ErrNoAddress = errors.New("no free address")

// Addresses hands out the addresses of one network's subnet. The network
// address, the broadcast address and the first host are never given: the
// first host is reserved for the network's own use on every node.
//
// It gives addresses in order after a rolling cursor, so that an address
// freed by a task that ended is given again only once the cursor has gone
// round the subnet: a stale record of the old task (a DNS answer, a
// connection) does not lead to a new one at once.
type Addresses struct {
	network string
	subnet  netip.Prefix
	// first and last bound the addresses that may be given.
	first, last uint32
	owner       map[uint32]string
	byOwner     map[string][]uint32
	// cursor is the last address given; the next search starts after it.
	cursor uint32
}

// NewAddresses returns the allocator of network's subnet (CIDR), with
// nothing held.
func NewAddresses(network, subnet string) (*Addresses, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("network %s: subnet %q is not an IPv4 CIDR", network, subnet)
	}
	p = p.Masked()
	base := addrNum(p.Addr())
	size := uint64(1) << (32 - p.Bits())
	a := &Addresses{network: network, subnet: p, owner: map[uint32]string{}, byOwner: map[string][]uint32{}}
	if size >= 4 {
		a.first = base + 2
		a.last = uint32(uint64(base) + size - 2)
		a.cursor = a.first - 1
	}
	return a, nil
}

// Subnet is the network's subnet.
func (a *Addresses) Subnet() netip.Prefix { return a.subnet }

// Size is how many addresses the subnet can give.
func (a *Addresses) Size() int {
	if a.last < a.first {
		return 0
	}
	return int(a.last - a.first + 1)
}

// Free is how many addresses are left to give.
func (a *Addresses) Free() int { return a.Size() - len(a.owner) }

// Next gives owner the next free address after the cursor.
func (a *Addresses) Next(owner string) (netip.Addr, error) {
	n := a.Size()
	at := a.cursor
	for range n {
		at++
		if at > a.last || at < a.first {
			at = a.first
		}
		if _, held := a.owner[at]; !held {
			a.hold(at, owner)
			a.cursor = at
			return numAddr(at), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %s has %w (subnet /%d holds %d)", a.network, ErrNoAddress, a.subnet.Bits(), n)
}

// Take gives owner the address it asks for, when that is free (or
// already its own).
func (a *Addresses) Take(addr netip.Addr, owner string) error {
	v, err := a.usable(addr)
	if err != nil {
		return err
	}
	if cur, held := a.owner[v]; held && cur != owner {
		return fmt.Errorf("address %s of network %s is held by %s", addr, a.network, describeOwner(cur))
	}
	a.hold(v, owner)
	return nil
}

// Hold records that owner holds addr, as found in the stored tasks and
// services; the cursor does not move.
func (a *Addresses) Hold(addr netip.Addr, owner string) error { return a.Take(addr, owner) }

// Release frees every address owner holds.
func (a *Addresses) Release(owner string) {
	for _, v := range a.byOwner[owner] {
		if a.owner[v] == owner {
			delete(a.owner, v)
		}
	}
	delete(a.byOwner, owner)
}

// Held returns the addresses owner holds, in the order it got them.
func (a *Addresses) Held(owner string) []netip.Addr {
	var out []netip.Addr
	for _, v := range a.byOwner[owner] {
		out = append(out, numAddr(v))
	}
	return out
}

// resume puts the cursor on the highest address held, as if it had been
// given last: after a rebuild, addresses are given above those in use
// first, and freed ones late.
func (a *Addresses) resume() {
	for v := range a.owner {
		if v > a.cursor {
			a.cursor = v
		}
	}
}

func (a *Addresses) hold(v uint32, owner string) {
	if a.owner[v] == owner {
		return
	}
	a.owner[v] = owner
	a.byOwner[owner] = append(a.byOwner[owner], v)
}

// usable checks that addr may be given: inside the subnet, and neither its
// network address, its broadcast address nor its first host.
func (a *Addresses) usable(addr netip.Addr) (uint32, error) {
	if !addr.Is4() || !a.subnet.Contains(addr) {
		return 0, fmt.Errorf("address %s is not in subnet %s of network %s", addr, a.subnet, a.network)
	}
	v := addrNum(addr)
	if v < a.first || v > a.last {
		return 0, fmt.Errorf("address %s of network %s is reserved (the network, its first host and its broadcast address are never given)", addr, a.network)
	}
	return v, nil
}

// Owners of addresses: a task by its id, a service's virtual IPs by
// VIPOwner of its id.
const vipPrefix = "vip:"

// VIPOwner is who holds the virtual IPs of the service with id.
func VIPOwner(serviceID string) string { return vipPrefix + serviceID }

func describeOwner(owner string) string {
	if id, ok := strings.CutPrefix(owner, vipPrefix); ok {
		return "the virtual IP of service " + id
	}
	return "task " + owner
}

// TaskHolds reports whether t holds its addresses: until it is finished,
// and while its node is lost (orphaned), since its container may still
// run there.
func TaskHolds(t *berthv1.Task) bool {
	st := t.GetStatus().GetState()
	return st < berthv1.TaskState_TASK_STATE_COMPLETE || st == berthv1.TaskState_TASK_STATE_ORPHANED
}

// Pool is the allocators of every network, by network id.
type Pool struct {
	nets map[string]*Addresses
}

// NewPool returns the allocators of networks, holding the addresses of
// the tasks that hold theirs (TaskHolds) and the services' virtual IPs.
// Addresses that do not fit (outside their subnet, or claimed twice) are
// left out and reported in the returned errors.
func NewPool(networks []*berthv1.Network, services []*berthv1.Service, tasks []*berthv1.Task) (*Pool, []error) {
	p := &Pool{nets: make(map[string]*Addresses, len(networks))}
	var errs []error
	for _, n := range networks {
		if _, err := p.Network(n); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range services {
		errs = append(errs, p.HoldService(s)...)
	}
	for _, t := range tasks {
		if TaskHolds(t) {
			errs = append(errs, p.HoldTask(t)...)
		}
	}
	for _, a := range p.nets {
		a.resume()
	}
	return p, errs
}

// Network returns the allocator of n, making it when n is new to the
// pool, or made again with another subnet.
func (p *Pool) Network(n *berthv1.Network) (*Addresses, error) {
	id := n.GetMeta().GetId()
	if a, ok := p.nets[id]; ok && a.subnet.String() == n.GetSubnet() {
		return a, nil
	}
	a, err := NewAddresses(n.GetName(), n.GetSubnet())
	if err != nil {
		return nil, err
	}
	p.nets[id] = a
	return a, nil
}

// RemoveNetwork forgets the network with id.
func (p *Pool) RemoveNetwork(id string) { delete(p.nets, id) }

// HoldTask records t's addresses as held by t.
func (p *Pool) HoldTask(t *berthv1.Task) []error {
	var errs []error
	for _, tn := range t.GetNetworks() {
		a, ok := p.nets[tn.GetNetworkId()]
		if !ok {
			continue
		}
		addr, err := netip.ParsePrefix(tn.GetAddress())
		if err == nil {
			err = a.Hold(addr.Addr(), t.GetMeta().GetId())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", t.GetMeta().GetId(), err))
		}
	}
	return errs
}

// HoldService records svc's virtual IPs as held by it.
func (p *Pool) HoldService(svc *berthv1.Service) []error {
	var errs []error
	owner := VIPOwner(svc.GetMeta().GetId())
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		a, ok := p.nets[v.GetNetworkId()]
		if !ok {
			continue
		}
		addr, err := netip.ParseAddr(v.GetAddress())
		if err == nil {
			err = a.Hold(addr, owner)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc.GetMeta().GetId(), err))
		}
	}
	return errs
}

// Release frees what owner holds on every network.
func (p *Pool) Release(owner string) {
	for _, a := range p.nets {
		a.Release(owner)
	}
}

// AssignTask gives the task with id one address on each network of its
// spec: nets[i] is the network that spec[i] names. It gives all or none.
func (p *Pool) AssignTask(id string, spec []*berthv1.ServiceNetwork, nets []*berthv1.Network) ([]*berthv1.TaskNetwork, error) {
	out := make([]*berthv1.TaskNetwork, 0, len(spec))
	for i, sn := range spec {
		n := nets[i]
		a, err := p.Network(n)
		if err != nil {
			p.Release(id)
			return nil, err
		}
		var addr netip.Addr
		if want := sn.GetIpv4Address(); want != "" {
			addr, err = netip.ParseAddr(want)
			if err != nil {
				err = fmt.Errorf("ipv4_address %q on network %s is not an IPv4 address", want, n.GetName())
			} else {
				err = a.Take(addr, id)
			}
		} else {
			addr, err = a.Next(id)
		}
		if err != nil {
			p.Release(id)
			return nil, err
		}
		out = append(out, &berthv1.TaskNetwork{
			NetworkId: n.GetMeta().GetId(),
			Network:   n.GetName(),
			Address:   netip.PrefixFrom(addr, a.subnet.Bits()).String(),
			Internal:  n.GetInternal(),
		})
	}
	return out, nil
}

// VirtualIP gives the service with id its virtual IP on n: the one it
// already holds there, else the next free one.
func (p *Pool) VirtualIP(serviceID string, n *berthv1.Network) (*berthv1.VirtualIP, error) {
	a, err := p.Network(n)
	if err != nil {
		return nil, err
	}
	owner := VIPOwner(serviceID)
	addr := netip.Addr{}
	if held := a.Held(owner); len(held) > 0 {
		addr = held[0]
	} else if addr, err = a.Next(owner); err != nil {
		return nil, err
	}
	return &berthv1.VirtualIP{NetworkId: n.GetMeta().GetId(), Network: n.GetName(), Address: addr.String()}, nil
}

// ReleaseVirtualIP frees the service's virtual IP on the network with id.
func (p *Pool) ReleaseVirtualIP(serviceID, networkID string) {
	if a, ok := p.nets[networkID]; ok {
		a.Release(VIPOwner(serviceID))
	}
}

func addrNum(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func numAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
