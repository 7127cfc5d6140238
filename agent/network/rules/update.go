package rules

import (
	"cmp"
	"reflect"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// An incremental Apply writes only what changed between the last applied
// model and the new one, still in one transaction. The table's skeleton
// (base chains, the services chain, the network sets and the forward
// isolation) depends only on the networks and the node range; when those
// change, which is rare, the table is replaced whole. Everything else
// lives in objects named after what they serve, so a change touches
// only its own:
//
//   - a VIP with endpoints: an element of the vips map and its spreader
//     chains (vip-A, vip-A-E...); a VIP without: an element of the
//     no-endpoint set;
//   - an ingress port with endpoints: its spreader chains
//     (ingress-tcp-80, ingress-tcp-80-E...);
//   - host ports and the list of ingress ports: the rules of the
//     published chain, which are few and rewritten together.

// incremental reports whether update can turn a table holding old into
// one holding m: they share the skeleton.
func incremental(old, m Model) bool {
	return old.NodeRange == m.NodeRange && slices.Equal(old.Networks, m.Networks)
}

// update queues the changes that turn the table from holding old into
// holding m. Both are normalized and valid, and incremental(old, m).
// The stages run in the order the kernel checks references within the
// transaction: nothing is deleted while something still names it, and
// nothing names what is not yet there.
func (r *ruleset) update(old, m Model) error {
	vips := diffVIPs(old.VIPs, m.VIPs)
	ports := diffIngress(old.Ingress, m.Ingress)
	pub := publishedRules(m)
	pubChanged := !reflect.DeepEqual(publishedRules(old), pub)

	// 1. Let go of chains about to be deleted: the map elements of VIPs
	// that lose their chain, the published rules that lead to ingress
	// chains. Elements of the no-endpoint set go here too.
	if err := r.delElements(vipsMap(), vips.unmapped); err != nil {
		return err
	}
	if err := r.delElements(noEndpointSet(), vips.unidled); err != nil {
		return err
	}
	if pubChanged {
		r.flush(r.existing(chainPublished))
	}

	// 2. Spreaders: delete, rewrite or add the chains of VIPs and ingress
	// ports whose endpoints changed.
	for _, c := range append(vips.spreaders, ports...) {
		if err := r.changeSpreader(c); err != nil {
			return err
		}
	}

	// 3. Point at the chains now there.
	if pubChanged {
		published := r.existing(chainPublished)
		for _, rule := range pub {
			r.rule(published, rule)
		}
	}
	if err := r.addElements(vipsMap(), vips.mapped); err != nil {
		return err
	}
	return r.addElements(noEndpointSet(), vips.idled)
}

// spreaderChange is one spreader before and after; nil is absent.
type spreaderChange struct{ old, new *spreader }

// changeSpreader queues c: the spreader goes, comes, or has its
// endpoints rewritten when they changed.
func (r *ruleset) changeSpreader(c spreaderChange) error {
	switch {
	case c.new == nil:
		r.dropSpreader(*c.old)
		return nil
	case c.old == nil:
		return r.addSpreader(*c.new)
	case !c.old.sameEndpoints(*c.new):
		return r.updateSpreader(*c.old, *c.new)
	}
	return nil
}

// vipDiff is what changes for the VIPs: their spreaders, and the
// elements of the vips map and of the no-endpoint set.
type vipDiff struct {
	spreaders        []spreaderChange
	mapped, unmapped []nftables.SetElement
	idled, unidled   []nftables.SetElement
}

func diffVIPs(old, vips []VIP) vipDiff {
	var d vipDiff
	pairUp(old, vips, func(a, b VIP) int { return a.Address.Compare(b.Address) }, func(o, n *VIP) {
		if o != nil && n != nil && slices.Equal(o.Endpoints, n.Endpoints) {
			return
		}
		os, ns := vipSpreaderOf(o), vipSpreaderOf(n)
		if os != nil || ns != nil {
			d.spreaders = append(d.spreaders, spreaderChange{os, ns})
		}
		switch {
		case os != nil && ns == nil:
			d.unmapped = append(d.unmapped, vipElement(*o))
		case os == nil && ns != nil:
			d.mapped = append(d.mapped, vipElement(*n))
		}
		oIdle, nIdle := o != nil && os == nil, n != nil && ns == nil
		switch {
		case oIdle && !nIdle:
			d.unidled = append(d.unidled, idleElement(*o))
		case nIdle && !oIdle:
			d.idled = append(d.idled, idleElement(*n))
		}
	})
	return d
}

// vipSpreaderOf is v's spreader, nil when v is absent or has no
// endpoints.
func vipSpreaderOf(v *VIP) *spreader {
	if v == nil || len(v.Endpoints) == 0 {
		return nil
	}
	s := vipSpreader(*v)
	return &s
}

func diffIngress(old, ports []Published) []spreaderChange {
	var d []spreaderChange
	of := func(p *Published) *spreader {
		if p == nil {
			return nil
		}
		if s, ok := ingressSpreader(*p); ok {
			return &s
		}
		return nil
	}
	pairUp(old, ports, func(a, b Published) int {
		return cmp.Or(strings.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	}, func(o, n *Published) {
		if o != nil && n != nil && slices.Equal(o.Endpoints, n.Endpoints) {
			return
		}
		if c := (spreaderChange{of(o), of(n)}); c.old != nil || c.new != nil {
			d = append(d, c)
		}
	})
	return d
}

// pairUp walks two lists sorted by compare and free of duplicates, and
// calls fn once per key with its entry in old and in new, nil where the
// key is absent.
func pairUp[T any](old, new []T, compare func(a, b T) int, fn func(o, n *T)) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || (i < len(old) && compare(old[i], new[j]) < 0):
			fn(&old[i], nil)
			i++
		case i == len(old) || compare(old[i], new[j]) > 0:
			fn(nil, &new[j])
			j++
		default:
			fn(&old[i], &new[j])
			i++
			j++
		}
	}
}
