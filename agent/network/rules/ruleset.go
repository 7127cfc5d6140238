package rules

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Packet marks. The plan shares them with every Berth table of the
// namespace, so a mark one agent's nat chain sets is read by another
// agent's filter chain.
const (
	// markMasquerade asks nat postrouting to masquerade the connection:
	// hairpin traffic (a task reaching itself through its VIP) and
	// published ports, whose replies must come back through this node.
	markMasquerade uint32 = 0x4000
	// markPublished lets a published port's connection through the forward
	// isolation: it comes from anywhere, by design.
	markPublished uint32 = 0x8000
)

// Names of the table's sets and fixed chains, as `nft list table` shows
// them.
const (
	setNetworks   = "network_subnets"
	setInternal   = "internal_subnets"
	setCluster    = "cluster_ranges"
	setNodeRange  = "node_range"
	setNoEndpoint = "no_endpoint_vips"
	mapVIPs       = "vips"

	chainServices  = "services"
	chainPublished = "published"
)

// VethPrefix starts the name of every container's host-side veth.
const VethPrefix = "bv"

// Gateway is the node's address on every container veth (the containers'
// next hop).
var Gateway = netip.MustParseAddr("169.254.1.1")

// ruleset queues one batch on a Conn: either the whole content of the
// table (replace: the batch deletes the table and writes it anew) or the
// changes from the last applied model (update, in update.go). Either
// way the kernel swaps old for new in one transaction.
type ruleset struct {
	c      *nftables.Conn
	t      *nftables.Table
	nextID uint32
	// messages counts the netlink messages queued; the socket buffers are
	// sized from it.
	messages int
}

func newRuleset(c *nftables.Conn, name string) *ruleset {
	return &ruleset{c: c, t: &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}}
}

// replace queues: make sure the table exists (so deleting it cannot
// fail), delete it with everything in it, add it again and fill it.
func (r *ruleset) replace(m Model) error {
	r.c.AddTable(r.t)
	r.c.DelTable(r.t)
	r.c.AddTable(r.t)
	r.messages += 3
	return r.fill(m)
}

// remove queues the table's deletion, which does not fail when it is
// absent.
func (r *ruleset) remove() {
	r.c.AddTable(r.t)
	r.c.DelTable(r.t)
	r.messages += 2
}

func (r *ruleset) chain(name string) *nftables.Chain {
	r.messages++
	return r.c.AddChain(&nftables.Chain{Name: name, Table: r.t})
}

func (r *ruleset) baseChain(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
	r.messages++
	return r.c.AddChain(&nftables.Chain{Name: name, Table: r.t, Type: typ, Hooknum: hook, Priority: prio})
}

// existing names a chain the table already holds, for rules to be
// added to or flushed from it.
func (r *ruleset) existing(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: r.t}
}

// flush queues the deletion of every rule of c.
func (r *ruleset) flush(c *nftables.Chain) {
	r.messages++
	r.c.FlushChain(c)
}

// delChain queues the deletion of a chain and its rules.
func (r *ruleset) delChain(name string) {
	r.messages++
	r.c.DelChain(r.existing(name))
}

// addElements and delElements queue a change of an existing named set
// (s names it: its ID is 0); no elements queue nothing.
func (r *ruleset) addElements(s *nftables.Set, elems []nftables.SetElement) error {
	if len(elems) == 0 {
		return nil
	}
	s.Table = r.t
	r.messages++
	if err := r.c.SetAddElements(s, elems); err != nil {
		return fmt.Errorf("set %s: %w", s.Name, err)
	}
	return nil
}

func (r *ruleset) delElements(s *nftables.Set, elems []nftables.SetElement) error {
	if len(elems) == 0 {
		return nil
	}
	s.Table = r.t
	r.messages++
	if err := r.c.SetDeleteElements(s, elems); err != nil {
		return fmt.Errorf("set %s: %w", s.Name, err)
	}
	return nil
}

func (r *ruleset) rule(c *nftables.Chain, e ...[]expr.Any) {
	r.messages++
	r.c.AddRule(&nftables.Rule{Table: r.t, Chain: c, Exprs: join(e...)})
}

func (r *ruleset) set(s *nftables.Set, elems []nftables.SetElement) (*nftables.Set, error) {
	r.nextID++
	s.ID = r.nextID
	s.Table = r.t
	if s.Anonymous {
		s.Name = "__map%d"
	}
	r.messages++
	if len(elems) > 0 {
		r.messages++
	}
	if err := r.c.AddSet(s, elems); err != nil {
		return nil, fmt.Errorf("set %s: %w", s.Name, err)
	}
	return s, nil
}

// addrSet is a named set of addresses; interval sets hold prefixes.
func (r *ruleset) addrSet(name string, interval bool, elems []nftables.SetElement) (*nftables.Set, error) {
	return r.set(&nftables.Set{Name: name, KeyType: nftables.TypeIPAddr, Interval: interval}, elems)
}

// fill queues the chains, sets and rules of m (normalized and valid).
func (r *ruleset) fill(m Model) error {
	var subnets, internal []netip.Prefix
	for _, n := range m.Networks {
		subnets = append(subnets, n.Subnet)
		if n.Internal {
			internal = append(internal, n.Subnet)
		}
	}
	cluster := slices.Clone(subnets)
	var nodeRange []netip.Prefix
	if m.NodeRange.IsValid() {
		cluster = append(cluster, m.NodeRange)
		nodeRange = append(nodeRange, m.NodeRange)
	}

	// Chains first: the maps and rules below name them.
	natPre := r.baseChain("nat-prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	natOut := r.baseChain("nat-output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	natPost := r.baseChain("nat-postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	// Filter at prerouting, after dstnat: a VIP without endpoints is
	// refused there, before the routing decision, which would otherwise
	// answer "unreachable" on a node without a route for it.
	prerouting := r.baseChain("filter-prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest+10))
	forward := r.baseChain("filter-forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	input := r.baseChain("filter-input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter)
	output := r.baseChain("filter-output", nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityFilter)
	services := r.chain(chainServices)
	published := r.chain(chainPublished)

	sNetworks, err := r.addrSet(setNetworks, true, intervals(subnets))
	if err != nil {
		return err
	}
	sInternal, err := r.addrSet(setInternal, true, intervals(internal))
	if err != nil {
		return err
	}
	sCluster, err := r.addrSet(setCluster, true, intervals(cluster))
	if err != nil {
		return err
	}
	sNodeRange, err := r.addrSet(setNodeRange, true, intervals(nodeRange))
	if err != nil {
		return err
	}

	// VIPs: `ip daddr vmap @vips` leads to the VIP's chain, which picks an
	// endpoint chain at random; that one marks hairpin traffic and dnats.
	var noEndpoint, vipElems []nftables.SetElement
	for _, v := range m.VIPs {
		if len(v.Endpoints) == 0 {
			noEndpoint = append(noEndpoint, idleElement(v))
			continue
		}
		if err := r.addSpreader(vipSpreader(v)); err != nil {
			return err
		}
		vipElems = append(vipElems, vipElement(v))
	}
	sNoEndpoint, err := r.addrSet(setNoEndpoint, false, noEndpoint)
	if err != nil {
		return err
	}
	sVIPs, err := r.set(vipsMap(), vipElems)
	if err != nil {
		return err
	}

	// Ingress ports with endpoints have a chain each, which the published
	// chain leads to.
	for _, p := range m.Ingress {
		if s, ok := ingressSpreader(p); ok {
			if err := r.addSpreader(s); err != nil {
				return err
			}
		}
	}
	for _, rule := range publishedRules(m) {
		r.rule(published, rule)
	}

	// dstnat, for packets that arrive (prerouting) and that the node sends
	// (output): VIPs, then ports published on a local address. Both rules
	// are there even when the map or the chain is empty, so that a change
	// of services or ports never touches this chain.
	r.rule(natPre, []expr.Any{verdict(expr.VerdictJump, chainServices)})
	r.rule(natOut, []expr.Any{verdict(expr.VerdictJump, chainServices)})
	r.rule(services, []expr.Any{
		loadIP(offIPDst),
		&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: sVIPs.Name, SetID: sVIPs.ID},
	})
	r.rule(services, daddrLocal(), []expr.Any{verdict(expr.VerdictJump, chainPublished)})

	// srcnat: connections marked above, and traffic leaving the cluster.
	// Toward a container of this node, the source is the gateway its
	// veth answers on: a container with no default route (internal
	// networks only) still finds its way back. Masquerade would pick
	// another address, since the gateway's scope is the link.
	r.rule(natPost, markHas(markMasquerade), oifnamePrefix(VethPrefix), snat(Gateway))
	r.rule(natPost, markHas(markMasquerade), []expr.Any{&expr.Masq{}})
	r.rule(natPost, ipInSet(offIPSrc, sNetworks.Name, sNetworks.ID, false),
		ipInSet(offIPDst, sCluster.Name, sCluster.ID, true), []expr.Any{&expr.Masq{}})

	// forward: isolation between networks and from outside.
	accept := []expr.Any{verdict(expr.VerdictAccept, "")}
	drop := []expr.Any{verdict(expr.VerdictDrop, "")}
	r.rule(prerouting, ipInSet(offIPDst, sNoEndpoint.Name, sNoEndpoint.ID, false), []expr.Any{reject()})
	r.rule(forward, ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept)
	r.rule(forward, markHas(markPublished), accept)
	for _, n := range m.Networks {
		r.rule(forward, ipIn(offIPSrc, n.Subnet), ipIn(offIPDst, n.Subnet), accept)
	}
	r.rule(forward, ipInSet(offIPSrc, sInternal.Name, sInternal.ID, false), drop)
	r.rule(forward, ipInSet(offIPSrc, sNetworks.Name, sNetworks.ID, false),
		ipInSet(offIPDst, sCluster.Name, sCluster.ID, false), drop)
	r.rule(forward, ipInSet(offIPSrc, sNodeRange.Name, sNodeRange.ID, false), accept)
	r.rule(forward, ipInSet(offIPDst, sNetworks.Name, sNetworks.ID, false), ctState(expr.CtStateBitNEW), drop)

	// input: containers answer the node but never call it.
	r.rule(input, iifnamePrefix(VethPrefix), ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accept)
	r.rule(input, iifnamePrefix(VethPrefix), drop)

	// output: the node reaching a VIP without endpoints is refused too.
	r.rule(output, ipInSet(offIPDst, sNoEndpoint.Name, sNoEndpoint.ID, false), []expr.Any{reject()})
	return nil
}

// intervals turns prefixes into the elements of an interval set: merged
// ranges, each a start element and an end element one past its last
// address. The kernel refuses overlapping intervals, so overlapping or
// touching prefixes are merged first.
func intervals(ps []netip.Prefix) []nftables.SetElement {
	type span struct{ lo, hi uint64 }
	var spans []span
	for _, p := range ps {
		p = p.Masked()
		lo := uint64(be32(p.Addr()))
		spans = append(spans, span{lo, lo + (uint64(1) << (32 - p.Bits())) - 1})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 && s.lo <= merged[n-1].hi+1 {
			merged[n-1].hi = max(merged[n-1].hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	var elems []nftables.SetElement
	for _, s := range merged {
		elems = append(elems, nftables.SetElement{Key: be32bytes(uint32(s.lo))})
		if s.hi < 0xffffffff {
			elems = append(elems, nftables.SetElement{Key: be32bytes(uint32(s.hi + 1)), IntervalEnd: true})
		}
	}
	return elems
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func be32bytes(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
