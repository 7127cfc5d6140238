package rules

import (
	"slices"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// spreader is a chain that sends each new connection to one of its
// endpoint chains at random: a VIP's (vip-A) or an ingress port's
// (ingress-tcp-80). Names are stable: a VIP or port keeps its chain
// across Applies, and an endpoint chain's name says everything its rules
// hold, so a change of endpoints adds and deletes only the endpoint
// chains that came or went, and rewrites the head's one rule.
type spreader struct {
	name string
	// before is what the head's rule does before it picks (the marks of
	// an ingress port).
	before    []expr.Any
	endpoints []endpointChain
}

type endpointChain struct {
	name  string
	rules [][]expr.Any
}

// vipSpreader is v's chain, which marks hairpin traffic (a task reaching
// itself through its VIP) and dnats to the address only: every port
// leads to the endpoint's same port. v has endpoints.
func vipSpreader(v VIP) spreader {
	s := spreader{name: vipChain(v)}
	for _, ep := range v.Endpoints {
		s.endpoints = append(s.endpoints, endpointChain{
			name:  s.name + "-" + ep.String(),
			rules: [][]expr.Any{join(ipIs(offIPSrc, ep), markAdd(markMasquerade)), dnat(ep, 0)},
		})
	}
	return s
}

// ingressSpreader is p's chain; ok is false when p has no endpoint, and
// so no chain.
func ingressSpreader(p Published) (s spreader, ok bool) {
	if len(p.Endpoints) == 0 {
		return spreader{}, false
	}
	s = spreader{name: ingressChain(p), before: markAdd(markMasquerade | markPublished)}
	for _, ep := range p.Endpoints {
		s.endpoints = append(s.endpoints, endpointChain{
			name:  s.name + "-" + ep.String(),
			rules: [][]expr.Any{dnat(ep.Addr(), ep.Port())},
		})
	}
	return s, true
}

func vipChain(v VIP) string { return "vip-" + v.Address.String() }

func ingressChain(p Published) string {
	return "ingress-" + p.Protocol + "-" + strconv.Itoa(int(p.Port))
}

// sameEndpoints reports whether a and b have the same endpoint chains in
// the same order, and so the same rules everywhere.
func (s spreader) sameEndpoints(o spreader) bool {
	return slices.EqualFunc(s.endpoints, o.endpoints, func(a, b endpointChain) bool { return a.name == b.name })
}

// publishedRules are the rules of the chain that services jumps to for
// packets to a local address: host ports bound to one address first, then
// ingress ports (to their chains), then host ports on every address.
func publishedRules(m Model) [][]expr.Any {
	var rules [][]expr.Any
	mark := markAdd(markMasquerade | markPublished)
	for _, hp := range m.HostPorts {
		if hp.HostIP.IsValid() {
			rules = append(rules, join(ipIs(offIPDst, hp.HostIP), l4Port(protoNumbers[hp.Protocol], hp.Port), mark,
				dnat(hp.Target.Addr(), hp.Target.Port())))
		}
	}
	for _, p := range m.Ingress {
		if len(p.Endpoints) > 0 {
			rules = append(rules, join(l4Port(protoNumbers[p.Protocol], p.Port),
				[]expr.Any{verdict(expr.VerdictGoto, ingressChain(p))}))
		}
	}
	for _, hp := range m.HostPorts {
		if !hp.HostIP.IsValid() {
			rules = append(rules, join(l4Port(protoNumbers[hp.Protocol], hp.Port), mark,
				dnat(hp.Target.Addr(), hp.Target.Port())))
		}
	}
	return rules
}

// vipsMap is the map from a VIP with endpoints to its chain.
func vipsMap() *nftables.Set {
	return &nftables.Set{Name: mapVIPs, IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}
}

// noEndpointSet is the set of VIPs without endpoints, refused in filter.
func noEndpointSet() *nftables.Set {
	return &nftables.Set{Name: setNoEndpoint, KeyType: nftables.TypeIPAddr}
}

// vipElement is v's element of the vips map.
func vipElement(v VIP) nftables.SetElement {
	return nftables.SetElement{
		Key: ip4(v.Address), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: vipChain(v)},
	}
}

// idleElement is v's element of the set of VIPs without endpoints.
func idleElement(v VIP) nftables.SetElement {
	return nftables.SetElement{Key: ip4(v.Address)}
}

// addSpreader queues s's chains and rules.
func (r *ruleset) addSpreader(s spreader) error {
	head := r.chain(s.name)
	for _, ep := range s.endpoints {
		r.addEndpoint(ep)
	}
	return r.dispatch(head, s)
}

// updateSpreader queues the change of an existing spreader from old to
// s: the head's rule goes (and with it the anonymous map that held the
// old endpoint chains), the endpoint chains that left are deleted, the
// ones that came are added, and the head gets its new rule.
func (r *ruleset) updateSpreader(old, s spreader) error {
	head := r.existing(s.name)
	r.flush(head)
	kept := map[string]bool{}
	for _, ep := range s.endpoints {
		kept[ep.name] = true
	}
	was := map[string]bool{}
	for _, ep := range old.endpoints {
		was[ep.name] = true
		if !kept[ep.name] {
			r.delChain(ep.name)
		}
	}
	for _, ep := range s.endpoints {
		if !was[ep.name] {
			r.addEndpoint(ep)
		}
	}
	return r.dispatch(head, s)
}

// dropSpreader queues the deletion of s's chains; nothing may refer to
// the head any more. Deleting a chain deletes its rules, and the head's
// rule was the only reference to the endpoint chains.
func (r *ruleset) dropSpreader(s spreader) {
	r.delChain(s.name)
	for _, ep := range s.endpoints {
		r.delChain(ep.name)
	}
}

func (r *ruleset) addEndpoint(ep endpointChain) {
	c := r.chain(ep.name)
	for _, rule := range ep.rules {
		r.rule(c, rule)
	}
}

// dispatch queues the head's rule: s.before, then a jump to one endpoint
// chain at random.
func (r *ruleset) dispatch(head *nftables.Chain, s spreader) error {
	names := make([]string, len(s.endpoints))
	for i, ep := range s.endpoints {
		names[i] = ep.name
	}
	pick, err := r.spread(names)
	if err != nil {
		return err
	}
	r.rule(head, s.before, pick)
	return nil
}

// spread is `numgen random mod N vmap { 0 : goto c0, 1 : goto c1, ... }`,
// or a plain goto for one chain.
func (r *ruleset) spread(chains []string) ([]expr.Any, error) {
	if len(chains) == 1 {
		return []expr.Any{verdict(expr.VerdictGoto, chains[0])}, nil
	}
	elems := make([]nftables.SetElement, len(chains))
	for i, c := range chains {
		elems[i] = nftables.SetElement{Key: u32(uint32(i)), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: c}}
	}
	s, err := r.set(&nftables.Set{
		Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict,
	}, elems)
	if err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: uint32(len(chains)), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
	}, nil
}
