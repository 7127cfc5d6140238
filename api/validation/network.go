package validation

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// MaxSubnetBits is the longest prefix a network's subnet may have: a /29
// leaves five addresses for tasks and virtual IPs once the network and
// broadcast addresses and the reserved first host are taken out.
const MaxSubnetBits = 29

// DefaultNetwork is the key of the network a service joins when it names
// none; its full name is DefaultNetworkName(app).
const DefaultNetwork = "default"

// DefaultNetworkName is the full name of an app's default network.
func DefaultNetworkName(app string) string { return app + "_" + DefaultNetwork }

// ValidateDNSLabel checks that name (of a service, or an alias: kind says
// which) can be looked up by DNS as it is: 1 to 63 lowercase letters,
// digits and '-', neither starting nor ending with '-'.
func ValidateDNSLabel(kind, name string) error {
	if isDNSLabel(name) {
		return nil
	}
	msg := fmt.Sprintf("%s %q is not a valid DNS name, which other services look it up by: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit", kind, name)
	if s := suggestDNSLabel(name); s != "" && s != name {
		msg += fmt.Sprintf(", for example %q", s)
	}
	return fmt.Errorf("%s", msg)
}

func isDNSLabel(s string) bool {
	if s == "" || len(s) > maxNameLength || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// suggestDNSLabel turns s into a valid label, or "" when nothing of it is
// usable.
func suggestDNSLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	out := b.String()
	if len(out) > maxNameLength {
		out = out[:maxNameLength]
	}
	return strings.Trim(out, "-")
}

// isHostname reports whether s is a host name: dot-separated labels of
// letters, digits, '-' and '_' (which /etc/hosts and resolvers accept),
// none empty or starting or ending with '-'.
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > maxNameLength || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// ParseSubnet reads a network's subnet: an IPv4 CIDR without host bits,
// of at most /29.
func ParseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 subnet; write it as ADDRESS/BITS, like 10.20.0.0/24", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the subnet is %s", s, p.Masked())
	}
	if p.Bits() > MaxSubnetBits {
		return netip.Prefix{}, fmt.Errorf("%q is too small for a network; give a /%d or larger, like %s", s, MaxSubnetBits, netip.PrefixFrom(p.Addr(), 24).Masked())
	}
	return p, nil
}

// ReservedAddress says why addr, an address of subnet, cannot be given to
// a task, or "" when it can: the network and broadcast addresses are not
// hosts, and the first host is kept for the network itself.
func ReservedAddress(subnet netip.Prefix, addr netip.Addr) string {
	first := subnet.Masked().Addr()
	switch {
	case addr == first:
		return "the network's own address"
	case addr == first.Next():
		return "the network's first address, which Berth keeps"
	case addr == lastAddress(subnet):
		return "the network's broadcast address"
	}
	return ""
}

// lastAddress is the highest address of p.
func lastAddress(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// NetworkField is how problems name a network's field: networks.<key>.<field>,
// as a Compose file writes it.
func NetworkField(n *berthv1.AppNetwork, field string) string {
	key := n.GetKey()
	if key == "" {
		key = n.GetName()
	}
	if field == "" {
		return "networks." + key
	}
	return "networks." + key + "." + field
}

// SubnetField is the field that holds a network's subnet.
const SubnetField = "ipam.config[0].subnet"

// endpoint checks the fields of a spec that say how the service is
// reached and what its containers see: the endpoint mode and the ports'
// publish modes, networks, host name, extra hosts and DNS settings.
func (v *specValidator) endpoint(spec *berthv1.ServiceSpec) {
	switch spec.GetEndpointMode() {
	case berthv1.EndpointMode_ENDPOINT_MODE_UNSPECIFIED, berthv1.EndpointMode_ENDPOINT_MODE_VIP, berthv1.EndpointMode_ENDPOINT_MODE_DNSRR:
	default:
		v.add("deploy.endpoint_mode", fmt.Sprintf("unknown endpoint mode %d; use vip or dnsrr", spec.GetEndpointMode()))
	}
	dnsrr := spec.GetEndpointMode() == berthv1.EndpointMode_ENDPOINT_MODE_DNSRR
	for i, p := range spec.GetPorts() {
		field := fmt.Sprintf("ports[%d].mode", i)
		switch p.GetMode() {
		case berthv1.PublishMode_PUBLISH_MODE_UNSPECIFIED, berthv1.PublishMode_PUBLISH_MODE_INGRESS:
			if dnsrr && p.GetPublished() != 0 {
				v.add(field, fmt.Sprintf("port %d is published in ingress mode, which reaches the service through its virtual IP, and endpoint_mode dnsrr gives it none; set mode: host on the port, or use endpoint_mode: vip", p.GetPublished()))
			}
		case berthv1.PublishMode_PUBLISH_MODE_HOST:
		default:
			v.add(field, fmt.Sprintf("unknown publish mode %d; use ingress or host", p.GetMode()))
		}
	}
	v.networks(spec)
	if h := spec.GetHostname(); h != "" && (!isHostname(h) || len(h) > maxNameLength) {
		v.add("hostname", fmt.Sprintf("%q is not a valid host name: use at most %d letters, digits, '-' and '.', like web-1", h, maxNameLength))
	}
	for i, eh := range spec.GetExtraHosts() {
		field := fmt.Sprintf("extra_hosts[%d]", i)
		if !isHostname(eh.GetHostname()) {
			v.add(field, fmt.Sprintf("%q is not a valid host name; write HOSTNAME:IP, like db.local:10.0.0.5", eh.GetHostname()))
		}
		if _, err := netip.ParseAddr(eh.GetAddress()); err != nil {
			reason := fmt.Sprintf("%q is not an IP address; write HOSTNAME:IP, like db.local:10.0.0.5", eh.GetAddress())
			if eh.GetAddress() == "host-gateway" {
				reason = "host-gateway is not supported; give the host's IP address"
			}
			v.add(field, reason)
		}
	}
	for i, d := range spec.GetDns() {
		if _, err := netip.ParseAddr(d); err != nil {
			v.add(fmt.Sprintf("dns[%d]", i), fmt.Sprintf("%q is not an IP address; give the address of a DNS server, like 1.1.1.1", d))
		}
	}
	for i, d := range spec.GetDnsSearch() {
		if !isHostname(strings.TrimSuffix(d, ".")) {
			v.add(fmt.Sprintf("dns_search[%d]", i), fmt.Sprintf("%q is not a valid domain name, like example.com", d))
		}
	}
	for i, o := range spec.GetDnsOptions() {
		if o == "" || strings.ContainsAny(o, " \t\n") {
			v.add(fmt.Sprintf("dns_opt[%d]", i), fmt.Sprintf("%q is not a resolver option; give one word, like ndots:2", o))
		}
	}
}

// networks checks a spec's networks on their own; ValidateNetworks checks
// them against the app's networks and other services.
func (v *specValidator) networks(spec *berthv1.ServiceSpec) {
	seen := map[string]bool{}
	for i, sn := range spec.GetNetworks() {
		if sn == nil || sn.GetNetwork() == "" {
			v.add(fmt.Sprintf("networks[%d]", i), "network is missing; name the network the service joins")
			continue
		}
		field := "networks." + sn.GetNetwork()
		if seen[sn.GetNetwork()] {
			v.add(field, "the network is listed twice; keep one entry")
			continue
		}
		seen[sn.GetNetwork()] = true
		aliases := map[string]bool{}
		for j, a := range sn.GetAliases() {
			afield := fmt.Sprintf("%s.aliases[%d]", field, j)
			if err := ValidateDNSLabel("alias", a); err != nil {
				v.add(afield, err.Error())
				continue
			}
			if aliases[a] {
				v.add(afield, fmt.Sprintf("alias %q is listed twice; keep one", a))
			}
			aliases[a] = true
		}
		if ip := sn.GetIpv4Address(); ip != "" {
			afield := field + ".ipv4_address"
			if addr, err := netip.ParseAddr(ip); err != nil || !addr.Is4() {
				v.add(afield, fmt.Sprintf("%q is not an IPv4 address, like 10.20.0.5", ip))
			} else if spec.GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
				v.add(afield, "a global service runs a task on every node, and one address cannot go to each; remove ipv4_address, or use mode: replicated with 1 replica")
			} else if spec.GetReplicas() > 1 {
				v.add(afield, fmt.Sprintf("one address cannot go to each of %d replicas; remove ipv4_address, or use 1 replica", spec.GetReplicas()))
			}
		}
	}
}

// ValidateNetworks checks an app's networks and its services' use of them:
// names and subnets (IPv4, no host bits, /29 or larger, no two overlapping),
// every network a service joins is one of the app's (or its default
// network, which Apply makes), fixed addresses lie inside their network's
// subnet (when the request knows it) and are not reserved nor given twice,
// and no two services answer to one name on one network. Problems on a
// network name the field networks.<key>.<field>; problems on a service are
// the service's, field networks.<network>.<field>.
func ValidateNetworks(app string, networks []*berthv1.AppNetwork, services []*berthv1.Service) Errors {
	var errs Errors
	byName := map[string]*berthv1.AppNetwork{}
	subnets := map[string]netip.Prefix{} // by network name
	var order []string
	for i, n := range networks {
		if n == nil {
			errs = append(errs, FieldError{Field: fmt.Sprintf("networks[%d]", i), Reason: "network is missing"})
			continue
		}
		if err := ValidateName("network", n.GetName()); err != nil {
			errs = append(errs, FieldError{Field: NetworkField(n, "name"), Reason: err.Error()})
			continue
		}
		if byName[n.GetName()] != nil {
			errs = append(errs, FieldError{Field: NetworkField(n, "name"), Reason: fmt.Sprintf("network %q is defined twice; give each network a distinct name", n.GetName())})
			continue
		}
		byName[n.GetName()] = n
		if n.GetExternal() || n.GetSubnet() == "" {
			continue
		}
		p, err := ParseSubnet(n.GetSubnet())
		if err != nil {
			errs = append(errs, FieldError{Field: NetworkField(n, SubnetField), Reason: err.Error()})
			continue
		}
		for _, other := range order {
			if q := subnets[other]; q.Overlaps(p) {
				errs = append(errs, FieldError{Field: NetworkField(n, SubnetField), Reason: fmt.Sprintf("%s overlaps %s of network %s; give each network its own range", p, q, NetworkField(byName[other], "")[len("networks."):])})
				break
			}
		}
		subnets[n.GetName()] = p
		order = append(order, n.GetName())
	}

	type owner struct{ service, field string }
	names := map[string]map[string]owner{}      // network -> name -> who answers to it
	addresses := map[string]map[string]string{} // network -> address -> service
	members := map[string][]string{}            // network -> the services on it
	for _, svc := range services {
		for _, sn := range svc.GetSpec().GetNetworks() {
			members[sn.GetNetwork()] = append(members[sn.GetNetwork()], svc.GetName())
		}
	}
	for _, svc := range services {
		for _, sn := range svc.GetSpec().GetNetworks() {
			name := sn.GetNetwork()
			if name == "" {
				continue
			}
			field := "networks." + name
			if byName[name] == nil && name != DefaultNetworkName(app) {
				errs = append(errs, FieldError{Service: svc.GetName(), Field: field, Reason: fmt.Sprintf("network %q is not defined; add it under the top-level networks: key (with external: true for a network made with berth network create)", name)})
				continue
			}
			if names[name] == nil {
				names[name] = map[string]owner{}
				addresses[name] = map[string]string{}
			}
			for j, a := range sn.GetAliases() {
				afield := fmt.Sprintf("%s.aliases[%d]", field, j)
				isMember := func(m string) bool { return ServiceNameKey(m) == ServiceNameKey(a) }
				if !isMember(svc.GetName()) && slices.ContainsFunc(members[name], isMember) {
					errs = append(errs, FieldError{Service: svc.GetName(), Field: afield, Reason: fmt.Sprintf("alias %q is the name of another service on network %s; choose another alias", a, name)})
					continue
				}
				if o, ok := names[name][a]; ok && o.service != svc.GetName() {
					errs = append(errs, FieldError{Service: svc.GetName(), Field: afield, Reason: fmt.Sprintf("alias %q is already an alias of service %q on network %s; give each service its own aliases", a, o.service, name)})
					continue
				}
				names[name][a] = owner{svc.GetName(), afield}
			}
			ip := sn.GetIpv4Address()
			addr, err := netip.ParseAddr(ip)
			if ip == "" || err != nil || !addr.Is4() {
				continue // ValidateSpec reports a malformed one
			}
			afield := field + ".ipv4_address"
			if p, ok := subnets[name]; ok {
				if !p.Contains(addr) {
					errs = append(errs, FieldError{Service: svc.GetName(), Field: afield, Reason: fmt.Sprintf("%s is outside network %s's subnet %s; give an address inside it", addr, name, p)})
					continue
				}
				if why := ReservedAddress(p, addr); why != "" {
					errs = append(errs, FieldError{Service: svc.GetName(), Field: afield, Reason: fmt.Sprintf("%s is %s (%s); give another address of the subnet", addr, why, p)})
					continue
				}
			}
			if other, ok := addresses[name][addr.String()]; ok {
				errs = append(errs, FieldError{Service: svc.GetName(), Field: afield, Reason: fmt.Sprintf("%s is already the address of service %q on network %s; give each service its own", addr, other, name)})
				continue
			}
			addresses[name][addr.String()] = svc.GetName()
		}
	}
	return errs
}
