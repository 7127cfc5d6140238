// Package dns is each container's name server and its generated files.
//
// Every container gets its own server at 127.0.0.11:53, on sockets the
// agent opens inside the container's network namespace and serves from
// its own. The server answers the cluster's names (services, their
// aliases, tasks.SERVICE) from an Index built from the network map, as
// seen from the asking task: only services on a network the task is on
// are visible. Every other name goes to the upstream resolvers. The
// resolv.conf, hosts and hostname files a container gets point at it.
package dns

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	miekg "github.com/miekg/dns"

	"github.com/berthproject/berth/agent/network/netmap"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Index answers the cluster's names for each task from one network map
// snapshot. It does not change once built (a new snapshot makes a new
// Index), and any number of goroutines may read one at once.
type Index struct {
	// snap gives the asking task and its service, by id.
	snap *netmap.Snapshot
	// names holds the records of every name, per namespace. A name may
	// have several records (the same service name in two apps, an alias
	// that is also a service's name); pick chooses one.
	names map[nameKey][]record
	// ptrs holds what each task and virtual IP address is, on its
	// network, for reverse lookups. They are rare, so it is built on the
	// first.
	ptrOnce sync.Once
	ptrs    map[ptrKey]ptrRecord
}

type nameKey struct {
	namespace string
	name      string // lower case, no trailing dot
}

// asker is a task that sends queries.
type asker struct {
	namespace string
	app       string // lower case
	// task's networks, in order, are the order of the addresses in an
	// answer.
	task *berthv1.NetworkTask
}

func (a *asker) on(network string) bool {
	for _, tn := range a.task.GetNetworks() {
		if tn.GetNetworkId() == network {
			return true
		}
	}
	return false
}

// recordKind orders the ways a name can lead to a service; records of a
// name are sorted by it so that pick tries them in this order.
type recordKind uint8

const (
	// kindQualified: SERVICE.APP or tasks.SERVICE.APP.
	kindQualified recordKind = iota
	// kindAlias: an alias (or tasks.ALIAS), on one network only.
	kindAlias
	// kindPlain: SERVICE or tasks.SERVICE.
	kindPlain
)

type record struct {
	kind recordKind
	app  string
	// service and id only order records deterministically.
	service string
	id      string
	// network is the only network of a kindAlias record.
	network string
	// addrs are the answer on each of the service's networks; a network
	// of the service without ready tasks has an empty entry, so the name
	// still exists there.
	addrs []netAddrs
	// tasks: the addresses are tasks', to be shuffled per answer, not a
	// virtual IP.
	tasks bool
}

// netAddrs are a service's addresses on one network. A service is on a
// few networks, so a slice searched in order beats a map.
type netAddrs struct {
	network string
	addrs   []netip.Addr
}

func find(nas []netAddrs, network string) (addrs []netip.Addr, ok bool) {
	for i := range nas {
		if nas[i].network == network {
			return nas[i].addrs, true
		}
	}
	return nil, false
}

// visibleTo reports whether a can see r: whether they share a network.
func (r *record) visibleTo(a *asker) bool {
	if r.kind == kindAlias {
		return a.on(r.network)
	}
	for _, tn := range a.task.GetNetworks() {
		if _, ok := find(r.addrs, tn.GetNetworkId()); ok {
			return true
		}
	}
	return false
}

// answer returns r's addresses on the networks it shares with a, in a's
// network order. The result may share memory with r: callers must not
// modify it.
func (r *record) answer(a *asker) []netip.Addr {
	if r.kind == kindAlias {
		addrs, _ := find(r.addrs, r.network)
		return clip(addrs)
	}
	var out []netip.Addr
	copied := false
	for _, tn := range a.task.GetNetworks() {
		addrs, _ := find(r.addrs, tn.GetNetworkId())
		switch {
		case len(addrs) == 0:
		case out == nil:
			// The common case, one shared network: no copy.
			out = clip(addrs)
		case !copied:
			out = append(slices.Clone(out), addrs...)
			copied = true
		default:
			out = append(out, addrs...)
		}
	}
	return out
}

func clip(s []netip.Addr) []netip.Addr { return s[:len(s):len(s)] }

type ptrKey struct {
	addr    netip.Addr
	network string
}

// ptrRecord is what an address is: a task's, or when task is nil the
// virtual IP of svc. The name is made when asked for, which keeps
// building the index cheap.
type ptrRecord struct {
	namespace string
	svc       *berthv1.NetworkService
	task      *berthv1.NetworkTask
}

func (p *ptrRecord) name() string {
	if p.task == nil {
		return fqdn(p.svc.GetName(), p.svc.GetApp())
	}
	// Swarm's task name "SERVICE.SLOT.TASKID", under the app.
	return fqdn(p.svc.GetName()+"."+strconv.FormatUint(p.task.GetSlot(), 10)+"."+p.task.GetId(), p.svc.GetApp())
}

// serviceEntry gathers what the index needs of one service while it is
// built.
type serviceEntry struct {
	svc *berthv1.NetworkService
	app string // lower case
	// networks are the service's networks, by name and id.
	networks []networkRef
	// tasks are its ready tasks, ready how many.
	tasks []*berthv1.NetworkTask
	ready int
}

type networkRef struct{ name, id string }

// addNetwork adds a network to e unless it has one of that name.
func (e *serviceEntry) addNetwork(name, id string) {
	for _, n := range e.networks {
		if n.name == name {
			return
		}
	}
	e.networks = append(e.networks, networkRef{name, id})
}

func (e *serviceEntry) networkID(name string) (string, bool) {
	for _, n := range e.networks {
		if n.name == name {
			return n.id, true
		}
	}
	return "", false
}

// NewIndex builds the index of snap. It takes time in proportion to the
// size of the map, so it can run on every change.
func NewIndex(snap *netmap.Snapshot) *Index {
	ix := &Index{
		snap:  snap,
		names: make(map[nameKey][]record, 4*len(snap.Services)),
	}
	netByName := make(map[nameKey]string, len(snap.Networks))
	for id, n := range snap.Networks {
		netByName[nameKey{n.GetNamespace(), n.GetName()}] = id
	}

	// A service's networks are those it names, and those its virtual IPs
	// and tasks are on, which carry both name and id (so a network the map
	// lacks for a moment still counts).
	entries := make([]serviceEntry, 0, len(snap.Services))
	byID := make(map[string]*serviceEntry, len(snap.Services))
	for _, svc := range snap.Services {
		entries = append(entries, serviceEntry{svc: svc, app: strings.ToLower(svc.GetApp())})
	}
	for i := range entries {
		e := &entries[i]
		for _, sn := range e.svc.GetNetworks() {
			if nid, ok := netByName[nameKey{e.svc.GetNamespace(), sn.GetNetwork()}]; ok {
				e.addNetwork(sn.GetNetwork(), nid)
			}
		}
		for _, vip := range e.svc.GetVirtualIps() {
			e.addNetwork(vip.GetNetwork(), vip.GetNetworkId())
		}
		byID[e.svc.GetId()] = e
	}

	// Two passes over the tasks: count each service's ready ones, then
	// fill slices cut from one array. Appending would allocate a few
	// times per service.
	ready := 0
	for _, t := range snap.Tasks {
		e := byID[t.GetServiceId()]
		if e == nil {
			continue
		}
		for _, tn := range t.GetNetworks() {
			e.addNetwork(tn.GetNetwork(), tn.GetNetworkId())
		}
		if t.GetReady() {
			e.ready++
			ready++
		}
	}
	backing := make([]*berthv1.NetworkTask, ready)
	for i := range entries {
		e := &entries[i]
		e.tasks, backing = backing[:0:e.ready], backing[e.ready:]
	}
	for _, t := range snap.Tasks {
		if e := byID[t.GetServiceId()]; e != nil && t.GetReady() {
			e.tasks = append(e.tasks, t)
		}
	}

	for i := range entries {
		ix.addService(&entries[i])
	}
	for _, recs := range ix.names {
		if len(recs) > 1 {
			slices.SortFunc(recs, compareRecords)
		}
	}
	return ix
}

func compareRecords(a, b record) int {
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	if c := strings.Compare(a.app, b.app); c != 0 {
		return c
	}
	if c := strings.Compare(a.service, b.service); c != 0 {
		return c
	}
	if c := strings.Compare(a.id, b.id); c != 0 {
		return c
	}
	return strings.Compare(a.network, b.network)
}

// addService adds the names of one service.
func (ix *Index) addService(e *serviceEntry) {
	svc := e.svc
	ns, app, name := svc.GetNamespace(), e.app, strings.ToLower(svc.GetName())
	if name == "" {
		return
	}

	// Ready tasks in slot order, so answers do not depend on map order.
	slices.SortFunc(e.tasks, func(a, b *berthv1.NetworkTask) int {
		if a.GetSlot() != b.GetSlot() {
			if a.GetSlot() < b.GetSlot() {
				return -1
			}
			return 1
		}
		return strings.Compare(a.GetId(), b.GetId())
	})
	// Every network of the service has an entry, empty or not: the name
	// exists there even while no task is ready.
	taskAddrs := make([]netAddrs, len(e.networks))
	for i, n := range e.networks {
		taskAddrs[i].network = n.id
	}
	for _, t := range e.tasks {
		for _, tn := range t.GetNetworks() {
			addr, ok := parseAddr(tn.GetAddress())
			if !ok {
				continue
			}
			for i := range taskAddrs {
				if taskAddrs[i].network == tn.GetNetworkId() {
					if taskAddrs[i].addrs == nil {
						taskAddrs[i].addrs = make([]netip.Addr, 0, len(e.tasks))
					}
					taskAddrs[i].addrs = append(taskAddrs[i].addrs, addr)
				}
			}
		}
	}

	nameAddrs, nameIsTasks := taskAddrs, true
	if svc.GetEndpointMode() != berthv1.EndpointMode_ENDPOINT_MODE_DNSRR {
		nameAddrs, nameIsTasks = make([]netAddrs, len(e.networks)), false
		vips := make([]netip.Addr, 0, len(svc.GetVirtualIps()))
		for i, n := range e.networks {
			nameAddrs[i].network = n.id
			for _, vip := range svc.GetVirtualIps() {
				if vip.GetNetworkId() != n.id {
					continue
				}
				if addr, ok := parseAddr(vip.GetAddress()); ok {
					vips = append(vips, addr)
					nameAddrs[i].addrs = vips[len(vips)-1:]
				}
			}
		}
	}

	add := func(kind recordKind, key, network string, addrs []netAddrs, tasks bool) {
		k := nameKey{ns, key}
		ix.names[k] = append(ix.names[k], record{
			kind: kind, app: app, service: name, id: svc.GetId(),
			network: network, addrs: addrs, tasks: tasks,
		})
	}
	add(kindPlain, name, "", nameAddrs, nameIsTasks)
	add(kindPlain, "tasks."+name, "", taskAddrs, true)
	if app != "" {
		add(kindQualified, name+"."+app, "", nameAddrs, nameIsTasks)
		add(kindQualified, "tasks."+name+"."+app, "", taskAddrs, true)
	}
	for _, sn := range svc.GetNetworks() {
		nid, ok := e.networkID(sn.GetNetwork())
		if !ok {
			continue
		}
		for _, alias := range sn.GetAliases() {
			alias = strings.ToLower(strings.TrimSuffix(alias, "."))
			if alias == "" || alias == name {
				continue
			}
			add(kindAlias, alias, nid, nameAddrs, nameIsTasks)
			add(kindAlias, "tasks."+alias, nid, taskAddrs, true)
		}
	}
}

func fqdn(name, app string) string {
	if app == "" {
		return strings.ToLower(name) + "."
	}
	return strings.ToLower(name+"."+app) + "."
}

func parseAddr(s string) (netip.Addr, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), true
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// Lookup answers name, a query of type qtype from the task taskID. known
// reports whether the name is one of the cluster's, as seen from that
// task; then addrs are its IPv4 addresses for an A query (possibly none:
// a name whose tasks are all down still exists) and none for any other
// type. An unknown name, or a query from a task not in the map, is not
// the index's to answer. Names are case-insensitive and may end in a dot.
// addrs may share memory with the index: callers must not modify it.
func (ix *Index) Lookup(taskID, name string, qtype uint16) (addrs []netip.Addr, known bool) {
	addrs, _, known = ix.lookup(taskID, name, qtype)
	return addrs, known
}

// lookup is Lookup that also reports whether the addresses are tasks',
// which the server shuffles per answer to spread clients over them.
func (ix *Index) lookup(taskID, name string, qtype uint16) (addrs []netip.Addr, tasks, known bool) {
	if ix == nil {
		return nil, false, false
	}
	a, ok := ix.asker(taskID)
	if !ok {
		return nil, false, false
	}
	r := a.pick(ix.names[nameKey{a.namespace, canonical(name)}])
	if r == nil {
		return nil, false, false
	}
	if qtype != miekg.TypeA {
		return nil, false, true
	}
	return r.answer(&a), r.tasks, true
}

// pick chooses which of a name's records a answers with: a service of the
// asker's own app by its plain name first, then SERVICE.APP, then an
// alias, then a service of another app by its plain name (an external
// network joins apps); each only if it shares a network with the asker.
// Within a kind, records are in app then service order, so the choice
// does not depend on map order.
func (a *asker) pick(recs []record) *record {
	for i := range recs {
		if r := &recs[i]; r.kind == kindPlain && r.app == a.app && r.visibleTo(a) {
			return r
		}
	}
	for i := range recs {
		r := &recs[i]
		if r.kind == kindPlain && r.app == a.app {
			continue
		}
		if r.visibleTo(a) {
			return r
		}
	}
	return nil
}

// asker returns the task taskID as the sender of a query. A task whose
// service is not in the map yet sees no names; its queries are all
// forwarded.
func (ix *Index) asker(taskID string) (asker, bool) {
	t := ix.snap.Tasks[taskID]
	if t == nil {
		return asker{}, false
	}
	svc := ix.snap.Services[t.GetServiceId()]
	if svc == nil {
		return asker{}, false
	}
	return asker{namespace: svc.GetNamespace(), app: strings.ToLower(svc.GetApp()), task: t}, true
}

// buildPTRs fills ptrs with every ready task's addresses and every
// virtual IP.
func (ix *Index) buildPTRs() {
	ix.ptrs = make(map[ptrKey]ptrRecord, len(ix.snap.Tasks)+len(ix.snap.Services))
	for _, svc := range ix.snap.Services {
		for _, vip := range svc.GetVirtualIps() {
			if addr, ok := parseAddr(vip.GetAddress()); ok {
				ix.ptrs[ptrKey{addr, vip.GetNetworkId()}] = ptrRecord{namespace: svc.GetNamespace(), svc: svc}
			}
		}
	}
	for _, t := range ix.snap.Tasks {
		svc := ix.snap.Services[t.GetServiceId()]
		if svc == nil || !t.GetReady() {
			continue
		}
		for _, tn := range t.GetNetworks() {
			if addr, ok := parseAddr(tn.GetAddress()); ok {
				ix.ptrs[ptrKey{addr, tn.GetNetworkId()}] = ptrRecord{namespace: svc.GetNamespace(), svc: svc, task: t}
			}
		}
	}
}

// LookupPTR returns the name of addr, a ready task's address or a virtual
// IP on a network the task taskID is on, as a fully qualified name:
// "SERVICE.APP." for a virtual IP, "SERVICE.SLOT.TASKID.APP." for a task.
func (ix *Index) LookupPTR(taskID string, addr netip.Addr) (name string, ok bool) {
	if ix == nil {
		return "", false
	}
	a, ok := ix.asker(taskID)
	if !ok {
		return "", false
	}
	ix.ptrOnce.Do(ix.buildPTRs)
	for _, tn := range a.task.GetNetworks() {
		if p, ok := ix.ptrs[ptrKey{addr.Unmap(), tn.GetNetworkId()}]; ok && p.namespace == a.namespace {
			return p.name(), true
		}
	}
	return "", false
}

// canonical lower-cases name and drops a trailing dot, without allocating
// when name is lower case already (queries nearly always are).
func canonical(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}
