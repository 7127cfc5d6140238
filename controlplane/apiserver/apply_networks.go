package apiserver

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// joinDefaultNetwork puts every service that names no network on the
// app's default network, and lists that network when a service joins it
// and the request does not: Compose's rule, for callers that send specs.
func joinDefaultNetwork(req *berthv1.ApplyRequest) {
	name := validation.DefaultNetworkName(req.GetApp())
	used := false
	for _, svc := range req.GetServices() {
		spec := svc.GetSpec()
		if spec == nil {
			continue
		}
		if len(spec.Networks) == 0 {
			spec.Networks = []*berthv1.ServiceNetwork{{Network: name}}
		}
		used = used || slices.ContainsFunc(spec.Networks, func(sn *berthv1.ServiceNetwork) bool { return sn.GetNetwork() == name })
	}
	listed := slices.ContainsFunc(req.GetNetworks(), func(n *berthv1.AppNetwork) bool { return n.GetName() == name })
	if used && !listed {
		req.Networks = append(req.Networks, &berthv1.AppNetwork{Name: name, Key: validation.DefaultNetwork})
	}
}

// planNetworks adds to txn the writes that make the app's networks the
// requested ones: new networks are created with a claim on their subnet
// (the one asked for, or the next free one of the network range), those
// that exist are kept (their labels updated), and the app's networks
// missing from the request are removed. External networks must exist. It
// returns every network the app's services may join, by name.
func (s *Server) planNetworks(req *berthv1.ApplyRequest, ts *timestamppb.Timestamp, txn *store.Txn, resp *berthv1.ApplyResponse) (map[string]*berthv1.Network, validation.Errors) {
	ns, app := req.Namespace, req.App
	own := map[string]*berthv1.Network{}
	for _, n := range s.cfg.Cache.Networks(store.NamespaceNetworksPrefix(ns)) {
		if n.GetApp() == app {
			own[n.GetName()] = n
		}
	}
	// A removed network's subnet is not offered again in the same apply:
	// its claim cannot be deleted and made in one transaction.
	taken := s.takenSubnets()
	var errs validation.Errors
	fail := func(an *berthv1.AppNetwork, field, reason string) {
		errs = append(errs, validation.FieldError{Field: validation.NetworkField(an, field), Reason: reason})
	}
	nets := map[string]*berthv1.Network{}
	for _, an := range req.Networks {
		name := an.GetName()
		cur, exists := s.cfg.Cache.Network(ns, name)
		delete(own, name)
		switch {
		case an.GetExternal():
			if !exists {
				fail(an, "external", fmt.Sprintf("network %q does not exist; create it with berth network create %s", name, name))
				continue
			}
			nets[name] = cur
		case exists && cur.GetApp() != app:
			owner := "made with berth network create"
			if cur.GetApp() != "" {
				owner = fmt.Sprintf("of app %q", cur.GetApp())
			}
			fail(an, "name", fmt.Sprintf("network %q already exists (%s); join it with external: true, or give this network another name", name, owner))
		case exists:
			if an.GetSubnet() != "" && !sameSubnet(an.GetSubnet(), cur.GetSubnet()) {
				fail(an, validation.SubnetField, fmt.Sprintf("network %s has subnet %s, and a network's subnet cannot change while it exists; keep %s, or remove the app first (berth delete app %s) and apply again", name, cur.GetSubnet(), cur.GetSubnet(), app))
				continue
			}
			if an.GetInternal() != cur.GetInternal() {
				fail(an, "internal", fmt.Sprintf("network %s has internal: %v, which cannot change while it exists; keep it, or remove the app first (berth delete app %s) and apply again", name, cur.GetInternal(), app))
				continue
			}
			nets[name] = cur
			if !maps.Equal(an.GetLabels(), cur.GetLabels()) {
				next := proto.Clone(cur).(*berthv1.Network)
				next.Labels = an.GetLabels()
				next.Meta.UpdatedAt = ts
				txn.Update(store.NetworkKey(ns, name), next)
			}
		default:
			n := &berthv1.Network{
				Meta:      &berthv1.Meta{Id: store.NewID(), CreatedAt: ts, UpdatedAt: ts},
				Namespace: ns, Name: name, App: app, Internal: an.GetInternal(), Labels: an.GetLabels(),
			}
			if an.GetSubnet() != "" {
				p, err := validation.ParseSubnet(an.GetSubnet())
				if err != nil {
					fail(an, validation.SubnetField, err.Error())
					continue
				}
				if why := taken.claim(s, p, ns+"/"+name); why != "" {
					fail(an, validation.SubnetField, why)
					continue
				}
				n.Subnet = p.String()
			} else {
				p, err := taken.next(s, ns+"/"+name)
				if err != nil {
					fail(an, "", err.Error())
					continue
				}
				n.Subnet = p.String()
			}
			nets[name] = n
			createNetwork(txn, n)
			resp.CreatedNetworks = append(resp.CreatedNetworks, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(own)) {
		if users := s.networkUsers(ns, name, app); len(users) > 0 {
			errs = append(errs, validation.FieldError{Field: "networks." + name, Reason: fmt.Sprintf("network %s is still used by %s of another app; keep it in this app, or take it out of theirs first", name, joinServices(users))})
			continue
		}
		removeNetwork(txn, own[name])
		resp.RemovedNetworks = append(resp.RemovedNetworks, name)
	}
	return nets, errs
}

// sameSubnet compares two CIDRs by what they mean.
func sameSubnet(a, b string) bool {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	return errA == nil && errB == nil && pa.Masked() == pb.Masked()
}

// checkAddresses checks the services' fixed addresses against the
// subnets their networks have (given now, or stored) and against the
// addresses other apps' services fixed on shared networks.
func (s *Server) checkAddresses(req *berthv1.ApplyRequest, nets map[string]*berthv1.Network) validation.Errors {
	fixed := map[string]string{} // network/address -> "app/service" of another app
	for _, svc := range s.cfg.Cache.Services(store.ServicesPrefix + req.Namespace + "/") {
		if svc.GetApp() == req.App {
			continue
		}
		for _, sn := range svc.GetSpec().GetNetworks() {
			if sn.GetIpv4Address() != "" {
				fixed[sn.GetNetwork()+"/"+sn.GetIpv4Address()] = svc.GetApp() + "/" + svc.GetName()
			}
		}
	}
	var errs validation.Errors
	for _, svc := range req.Services {
		for _, sn := range svc.GetSpec().GetNetworks() {
			n := nets[sn.GetNetwork()]
			if n == nil || sn.GetIpv4Address() == "" {
				continue
			}
			field := "networks." + sn.GetNetwork() + ".ipv4_address"
			addr, err := netip.ParseAddr(sn.GetIpv4Address())
			subnet, perr := netip.ParsePrefix(n.GetSubnet())
			if err != nil || perr != nil {
				continue
			}
			switch {
			case !subnet.Contains(addr):
				errs = append(errs, validation.FieldError{Service: svc.GetName(), Field: field, Reason: fmt.Sprintf("%s is outside network %s's subnet %s; give an address inside it", addr, n.GetName(), subnet)})
			case validation.ReservedAddress(subnet, addr) != "":
				errs = append(errs, validation.FieldError{Service: svc.GetName(), Field: field, Reason: fmt.Sprintf("%s is %s (%s); give another address of the subnet", addr, validation.ReservedAddress(subnet, addr), subnet)})
			case fixed[n.GetName()+"/"+addr.String()] != "":
				errs = append(errs, validation.FieldError{Service: svc.GetName(), Field: field, Reason: fmt.Sprintf("%s is already the address of service %s on network %s; give another address", addr, fixed[n.GetName()+"/"+addr.String()], n.GetName())})
			}
		}
	}
	return errs
}

// publishedPort is a port published on every node (ingress) or on the
// nodes running a task (host).
type publishedPort struct {
	port     uint32
	protocol string
}

// checkIngressPorts checks that no port the app publishes in ingress mode
// is published by a service of another app, in any namespace, nor by
// another service of the app: an ingress port answers on every node, so
// the cluster has one of each. A host-mode port of another service on the
// same port would meet it on every node that runs it, so it counts too.
func (s *Server) checkIngressPorts(req *berthv1.ApplyRequest) validation.Errors {
	type user struct {
		who     string
		ingress bool
	}
	users := map[publishedPort][]user{}
	for _, svc := range s.cfg.Cache.Services(store.ServicesPrefix) {
		if svc.GetNamespace() == req.Namespace && svc.GetApp() == req.App {
			continue // replaced by the request
		}
		who := svc.GetApp() + "/" + svc.GetName()
		if svc.GetNamespace() != req.Namespace {
			who += " of namespace " + svc.GetNamespace()
		}
		for _, p := range svc.GetSpec().GetPorts() {
			for _, key := range portsOf(p) {
				users[key] = append(users[key], user{who, isIngress(p)})
			}
		}
	}
	var errs validation.Errors
	for _, svc := range req.Services {
		for i, p := range svc.GetSpec().GetPorts() {
			self := req.App + "/" + svc.GetName()
		keys:
			for _, key := range portsOf(p) {
				for _, u := range users[key] {
					if u.who == self || (!u.ingress && !isIngress(p)) {
						continue // host ports on nodes are the scheduler's to place
					}
					mode := "in host mode"
					if u.ingress {
						mode = "in ingress mode, on every node,"
					}
					errs = append(errs, validation.FieldError{Service: svc.GetName(), Field: fmt.Sprintf("ports[%d].published", i),
						Reason: fmt.Sprintf("%s port %d is already published %s by service %s; publish another port, or remove it there first", key.protocol, key.port, mode, u.who)})
					break keys
				}
			}
			for _, key := range portsOf(p) {
				users[key] = append(users[key], user{self, isIngress(p)})
			}
		}
	}
	return errs
}

// portsOf lists the host ports p publishes: none, one, or each port of a
// range (published..published_end), which its tasks take on their nodes.
func portsOf(p *berthv1.PortSpec) []publishedPort {
	if p.GetPublished() == 0 {
		return nil
	}
	first := portOf(p)
	out := []publishedPort{first}
	for port := p.GetPublished() + 1; port <= p.GetPublishedEnd(); port++ {
		out = append(out, publishedPort{port, first.protocol})
	}
	return out
}

func portOf(p *berthv1.PortSpec) publishedPort {
	proto := p.GetProtocol()
	if proto == "" {
		proto = validation.DefaultProtocol
	}
	return publishedPort{p.GetPublished(), proto}
}

// isIngress reads an unset mode as ingress, Compose's default.
func isIngress(p *berthv1.PortSpec) bool {
	return p.GetMode() != berthv1.PublishMode_PUBLISH_MODE_HOST
}
