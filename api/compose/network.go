package compose

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// networkDrivers are the drivers a Compose file may name: Berth's
// networks span the cluster, which is what overlay means in Swarm, and a
// file written for a single Docker host says bridge.
var networkDrivers = []string{"", "overlay", "bridge"}

// convertNetworks maps the project's top-level networks (compose-go
// names them: "<app>_<key>", the name: given, or the key of an external
// one) onto AppNetworks, sorted by key. Problems name the field
// networks.<key>.<field>; the caller locates them.
func convertNetworks(networks types.Networks) ([]*berthv1.AppNetwork, validation.Errors) {
	var (
		out  []*berthv1.AppNetwork
		errs validation.Errors
	)
	for _, key := range slices.Sorted(maps.Keys(networks)) {
		n := networks[key]
		an := &berthv1.AppNetwork{Name: n.Name, Key: key, External: bool(n.External)}
		if an.External {
			out = append(out, an)
			continue
		}
		if !slices.Contains(networkDrivers, n.Driver) {
			errs = append(errs, validation.FieldError{Field: validation.NetworkField(an, "driver"),
				Reason: fmt.Sprintf("driver %q is not supported: Berth's networks span every node; use overlay (or bridge, or leave it out)", n.Driver)})
		}
		an.Internal = n.Internal
		if len(n.Labels) > 0 {
			an.Labels = maps.Clone(map[string]string(n.Labels))
		}
		for i, pool := range n.Ipam.Config {
			if i > 0 {
				errs = append(errs, validation.FieldError{Field: validation.NetworkField(an, fmt.Sprintf("ipam.config[%d]", i)),
					Reason: "a network has one subnet; keep the first entry of ipam.config"})
				break
			}
			if pool != nil {
				an.Subnet = pool.Subnet
			}
		}
		out = append(out, an)
	}
	return out, errs
}

// serviceNetworks maps a service's networks onto the spec, with their full
// names, in Compose's order: by priority, then by key. A service that
// names none is already on "default": compose-go puts it there. A service
// with network_mode has none, and Apply puts it on the default network.
func serviceNetworks(svc types.ServiceConfig, networks types.Networks) ([]*berthv1.ServiceNetwork, validation.Errors) {
	var (
		out  []*berthv1.ServiceNetwork
		errs validation.Errors
	)
	for _, key := range svc.NetworksByPriority() {
		n, ok := networks[key]
		if !ok {
			errs = append(errs, validation.FieldError{Service: svc.Name, Field: "networks." + key,
				Reason: fmt.Sprintf("network %q is not defined; add it under the top-level networks: key (with external: true for a network made with berth network create)", key)})
			continue
		}
		sn := &berthv1.ServiceNetwork{Network: n.Name}
		if c := svc.Networks[key]; c != nil {
			sn.Aliases = cloneStrings(c.Aliases)
			sn.Ipv4Address = c.Ipv4Address
		}
		out = append(out, sn)
	}
	return out, errs
}

// convertEndpoint maps what says how a service is reached and what its
// containers see: deploy.endpoint_mode, hostname, extra_hosts, dns,
// dns_search and dns_opt. The ports' modes are mapped with the ports.
func (c *converted) convertEndpoint(svc types.ServiceConfig) {
	c.spec.Hostname = svc.Hostname
	for _, host := range slices.Sorted(maps.Keys(svc.ExtraHosts)) {
		for _, addr := range svc.ExtraHosts[host] {
			c.spec.ExtraHosts = append(c.spec.ExtraHosts, &berthv1.ExtraHost{Hostname: host, Address: strings.Trim(addr, "[]")})
		}
	}
	c.spec.Dns = cloneStrings(svc.DNS)
	c.spec.DnsSearch = cloneStrings(svc.DNSSearch)
	c.spec.DnsOptions = cloneStrings(svc.DNSOpts)
	if svc.Deploy == nil {
		return
	}
	switch svc.Deploy.EndpointMode {
	case "":
	case "vip":
		c.spec.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_VIP
	case "dnsrr":
		c.spec.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_DNSRR
	default:
		c.errs = append(c.errs, validation.FieldError{Service: svc.Name, Field: "deploy.endpoint_mode",
			Reason: fmt.Sprintf("unknown endpoint mode %q; use vip or dnsrr", svc.Deploy.EndpointMode)})
	}
}

// publishMode maps a port's mode: ingress (Compose's default) or host.
func publishMode(mode string) (berthv1.PublishMode, error) {
	switch mode {
	case "", "ingress":
		return berthv1.PublishMode_PUBLISH_MODE_INGRESS, nil
	case "host":
		return berthv1.PublishMode_PUBLISH_MODE_HOST, nil
	}
	return 0, fmt.Errorf("unknown mode %q; use ingress (the port answers on every node) or host (only on the node running the task)", mode)
}

// networkKeys maps each network's full name to its key in the file, so
// problems the validation package reports on networks.<name> point at
// networks.<key>, where the file sets it.
func networkKeys(networks []*berthv1.AppNetwork) map[string]string {
	keys := make(map[string]string, len(networks))
	for _, n := range networks {
		if _, taken := keys[n.GetName()]; !taken {
			keys[n.GetName()] = n.GetKey()
		}
	}
	return keys
}

// fileField rewrites a service field that starts with networks.<name> to
// networks.<key>.
func fileField(field string, keys map[string]string) string {
	rest, ok := strings.CutPrefix(field, "networks.")
	if !ok {
		return field
	}
	end := strings.IndexAny(rest, ".[")
	if end < 0 {
		end = len(rest)
	}
	if key, ok := keys[rest[:end]]; ok {
		return "networks." + key + rest[end:]
	}
	return field
}

// locateServiceField finds a service's field in the files. A network
// written in a service's list form (networks: [back]) is an item, not a
// key: its line is the item's.
func (s sources) locateServiceField(service, field string) (string, int) {
	path := fieldPath(service, field)
	if len(path) >= 4 && path[2] == "networks" {
		for i := len(s) - 1; i >= 0; i-- {
			for _, doc := range s[i].docs {
				_, list := lookup(doc, []string{"services", service, "networks"})
				if list == nil || list.Kind != yaml.SequenceNode {
					continue
				}
				for _, item := range list.Content {
					if item.Kind == yaml.ScalarNode && item.Value == path[3] {
						return s[i].name, item.Line
					}
				}
			}
		}
	}
	return s.locate(path...)
}

// locateTopField finds a top-level field, like
// networks.back.ipam.config[0].subnet, in the files.
func (s sources) locateTopField(field string) (string, int) {
	path := fieldPath("", field)[2:]
	return s.locate(path...)
}
