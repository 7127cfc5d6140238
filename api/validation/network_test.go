package validation

import (
	"net/netip"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestValidateDNSLabel(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
	}{
		{name: "web"},
		{name: "web-2"},
		{name: "1st"},
		{name: strings.Repeat("a", 63)},
		{name: "", wantErr: "is not a valid DNS name"},
		{name: "my_web", wantErr: `for example "my-web"`},
		{name: "web-", wantErr: `for example "web"`},
		{name: "-web", wantErr: "is not a valid DNS name"},
		{name: "Web", wantErr: `for example "web"`},
		{name: "a.b", wantErr: `for example "a-b"`},
		{name: strings.Repeat("a", 64), wantErr: "at most 63"},
	}
	for _, tt := range tests {
		err := ValidateDNSLabel("alias", tt.name)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateDNSLabel(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidateDNSLabel(%q) = %v, want error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestParseSubnet(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "10.20.0.0/24", want: "10.20.0.0/24"},
		{in: "10.20.0.0/16", want: "10.20.0.0/16"},
		{in: "10.20.0.8/29", want: "10.20.0.8/29"},
		{in: "10.20.0.5/24", wantErr: "host bits set; the subnet is 10.20.0.0/24"},
		{in: "10.20.0.0/30", wantErr: "too small"},
		{in: "fd00::/64", wantErr: "not an IPv4 subnet"},
		{in: "10.20.0.0", wantErr: "not an IPv4 subnet"},
		{in: "nonsense", wantErr: "not an IPv4 subnet"},
	}
	for _, tt := range tests {
		got, err := ParseSubnet(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got.String() != tt.want):
			t.Errorf("ParseSubnet(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseSubnet(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestReservedAddress(t *testing.T) {
	p := netip.MustParsePrefix("10.20.0.0/24")
	for addr, reserved := range map[string]bool{"10.20.0.0": true, "10.20.0.1": true, "10.20.0.255": true, "10.20.0.2": false, "10.20.0.254": false} {
		if got := ReservedAddress(p, netip.MustParseAddr(addr)) != ""; got != reserved {
			t.Errorf("ReservedAddress(%s) reserved = %v, want %v", addr, got, reserved)
		}
	}
}

func TestValidateSpecEndpoint(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*berthv1.ServiceSpec)
		want   []string // "field: reason substring", in order; empty means valid
	}{
		{name: "valid", modify: func(s *berthv1.ServiceSpec) {
			s.Replicas = 1
			s.Networks = []*berthv1.ServiceNetwork{{Network: "shop_back", Aliases: []string{"db", "store-1"}, Ipv4Address: "10.20.0.5"}, {Network: "shared"}}
			s.Hostname = "web-1.local"
			s.ExtraHosts = []*berthv1.ExtraHost{{Hostname: "db.local", Address: "10.0.0.5"}, {Hostname: "v6", Address: "::1"}}
			s.Dns = []string{"1.1.1.1", "2606:4700::1111"}
			s.DnsSearch = []string{"example.com"}
			s.DnsOptions = []string{"ndots:2"}
		}},
		{name: "dnsrr with a host port", modify: func(s *berthv1.ServiceSpec) {
			s.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_DNSRR
			for _, p := range s.Ports {
				p.Mode = berthv1.PublishMode_PUBLISH_MODE_HOST
			}
			s.Ports = append(s.Ports, &berthv1.PortSpec{Target: 9000}) // not published
		}},
		{name: "dnsrr with an ingress port", modify: func(s *berthv1.ServiceSpec) {
			s.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_DNSRR
			s.Ports[1].Mode = berthv1.PublishMode_PUBLISH_MODE_HOST
		}, want: []string{"ports[0].mode: port 8080 is published in ingress mode, which reaches the service through its virtual IP, and endpoint_mode dnsrr gives it none; set mode: host"}},
		{name: "unknown modes", modify: func(s *berthv1.ServiceSpec) {
			s.EndpointMode = 7
			s.Ports[0].Mode = 9
		}, want: []string{"deploy.endpoint_mode: unknown endpoint mode 7", "ports[0].mode: unknown publish mode 9"}},
		{name: "networks", modify: func(s *berthv1.ServiceSpec) {
			s.Networks = []*berthv1.ServiceNetwork{
				{Network: "a", Aliases: []string{"ok", "Bad_Alias", "ok"}},
				{Network: "a"},
				nil,
				{Network: "b", Ipv4Address: "10.0.0.300"},
				{Network: "c", Ipv4Address: "fd00::5"},
			}
		}, want: []string{
			`networks.a.aliases[1]: alias "Bad_Alias" is not a valid DNS name`,
			`networks.a.aliases[2]: alias "ok" is listed twice`,
			"networks.a: the network is listed twice",
			"networks[2]: network is missing",
			`networks.b.ipv4_address: "10.0.0.300" is not an IPv4 address`,
			`networks.c.ipv4_address: "fd00::5" is not an IPv4 address`,
		}},
		{name: "fixed address with replicas", modify: func(s *berthv1.ServiceSpec) {
			s.Networks = []*berthv1.ServiceNetwork{{Network: "a", Ipv4Address: "10.0.0.5"}}
		}, want: []string{"networks.a.ipv4_address: one address cannot go to each of 2 replicas"}},
		{name: "fixed address in global mode", modify: func(s *berthv1.ServiceSpec) {
			s.Mode, s.Placement.MaxReplicasPerNode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL, 0
			s.Networks = []*berthv1.ServiceNetwork{{Network: "a", Ipv4Address: "10.0.0.5"}}
		}, want: []string{"networks.a.ipv4_address: a global service runs a task on every node"}},
		{name: "host names and dns", modify: func(s *berthv1.ServiceSpec) {
			s.Hostname = "web_1 x"
			s.ExtraHosts = []*berthv1.ExtraHost{{Hostname: "", Address: "10.0.0.1"}, {Hostname: "gw", Address: "host-gateway"}, {Hostname: "db", Address: "db.local"}}
			s.Dns = []string{"dns.local"}
			s.DnsSearch = []string{"bad..domain"}
			s.DnsOptions = []string{"ndots: 2"}
		}, want: []string{
			`hostname: "web_1 x" is not a valid host name`,
			`extra_hosts[0]: "" is not a valid host name; write HOSTNAME:IP`,
			"extra_hosts[1]: host-gateway is not supported",
			`extra_hosts[2]: "db.local" is not an IP address`,
			`dns[0]: "dns.local" is not an IP address`,
			`dns_search[0]: "bad..domain" is not a valid domain name`,
			`dns_opt[0]: "ndots: 2" is not a resolver option`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			tt.modify(spec)
			errs := ValidateSpec("web", spec)
			if len(errs) != len(tt.want) {
				t.Fatalf("ValidateSpec() = %d problems:\n%v\nwant %d: %q", len(errs), errs, len(tt.want), tt.want)
			}
			for i, want := range tt.want {
				if got := errs[i].Field + ": " + errs[i].Reason; errs[i].Service != "web" || !strings.Contains(got, want) {
					t.Errorf("problem %d = %s, want service web and %q", i, errs[i], want)
				}
			}
		})
	}
}

func TestValidateNetworks(t *testing.T) {
	on := func(name string, nets ...*berthv1.ServiceNetwork) *berthv1.Service {
		return &berthv1.Service{Name: name, Spec: &berthv1.ServiceSpec{Image: "busybox", Replicas: 1, Networks: nets}}
	}
	net := func(network string, aliases ...string) *berthv1.ServiceNetwork {
		return &berthv1.ServiceNetwork{Network: network, Aliases: aliases}
	}
	fixed := func(network, addr string) *berthv1.ServiceNetwork {
		return &berthv1.ServiceNetwork{Network: network, Ipv4Address: addr}
	}
	back := &berthv1.AppNetwork{Name: "shop_back", Key: "back", Subnet: "10.20.0.0/24"}
	tests := []struct {
		name     string
		networks []*berthv1.AppNetwork
		services []*berthv1.Service
		want     []string // "service/field: reason substring"
	}{
		{name: "valid", networks: []*berthv1.AppNetwork{
			back,
			{Name: "shop_front", Key: "front"},
			{Name: "shared", Key: "shared", External: true, Subnet: "10.20.0.0/16"}, // not read
		}, services: []*berthv1.Service{
			on("web", net("shop_front", "www"), net("shop_back", "api"), net("shared")),
			on("db", fixed("shop_back", "10.20.0.2"), net("shop_default")),
			// The same alias on networks the two do not share.
			on("cache", net("shop_front", "api")),
			on("plain"),
		}},
		{name: "network names and subnets", networks: []*berthv1.AppNetwork{
			back,
			{Name: "shop_back", Key: "back2"},
			{Name: "Bad Name", Key: "bad"},
			{Name: "shop_a", Key: "a", Subnet: "10.20.0.128/25"},
			{Name: "shop_b", Key: "b", Subnet: "10.30.0.1/24"},
			{Name: "shop_c", Key: "c", Subnet: "10.30.0.0/30"},
			{Name: "shop_d", Key: "d", Subnet: "fd00::/64"},
			nil,
		}, want: []string{
			`/networks.back2.name: network "shop_back" is defined twice`,
			`/networks.bad.name: invalid network name "Bad Name"`,
			"/networks.a.ipam.config[0].subnet: 10.20.0.128/25 overlaps 10.20.0.0/24 of network back",
			"/networks.b.ipam.config[0].subnet: \"10.30.0.1/24\" has host bits set",
			"/networks.c.ipam.config[0].subnet: \"10.30.0.0/30\" is too small",
			"/networks.d.ipam.config[0].subnet: \"fd00::/64\" is not an IPv4 subnet",
			"/networks[7]: network is missing",
		}},
		{name: "undefined network", networks: []*berthv1.AppNetwork{back}, services: []*berthv1.Service{
			on("web", net("shop_back"), net("shop_front")),
		}, want: []string{`web/networks.shop_front: network "shop_front" is not defined; add it under the top-level networks: key`}},
		{name: "fixed addresses", networks: []*berthv1.AppNetwork{back, {Name: "shop_other", Key: "other"}}, services: []*berthv1.Service{
			on("a", fixed("shop_back", "10.30.0.5")),
			on("b", fixed("shop_back", "10.20.0.0")),
			on("c", fixed("shop_back", "10.20.0.1")),
			on("d", fixed("shop_back", "10.20.0.255")),
			on("e", fixed("shop_back", "10.20.0.9")),
			on("f", fixed("shop_back", "10.20.0.9")),
			// Unknown subnet: the server checks it.
			on("g", fixed("shop_other", "192.168.0.9")),
		}, want: []string{
			"a/networks.shop_back.ipv4_address: 10.30.0.5 is outside network shop_back's subnet 10.20.0.0/24",
			"b/networks.shop_back.ipv4_address: 10.20.0.0 is the network's own address",
			"c/networks.shop_back.ipv4_address: 10.20.0.1 is the network's first address, which Berth keeps",
			"d/networks.shop_back.ipv4_address: 10.20.0.255 is the network's broadcast address",
			`f/networks.shop_back.ipv4_address: 10.20.0.9 is already the address of service "e"`,
		}},
		{name: "aliases", networks: []*berthv1.AppNetwork{back}, services: []*berthv1.Service{
			on("web", net("shop_back", "api", "web")),
			on("admin", net("shop_back", "api")),
			on("db", net("shop_back", "web")),
		}, want: []string{
			`admin/networks.shop_back.aliases[0]: alias "api" is already an alias of service "web" on network shop_back`,
			`db/networks.shop_back.aliases[0]: alias "web" is the name of another service on network shop_back`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateNetworks("shop", tt.networks, tt.services)
			if len(errs) != len(tt.want) {
				t.Fatalf("ValidateNetworks() = %d problems:\n%v\nwant %d: %q", len(errs), errs, len(tt.want), tt.want)
			}
			for i, want := range tt.want {
				if got := errs[i].Service + "/" + errs[i].Field + ": " + errs[i].Reason; !strings.Contains(got, want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got, want)
				}
			}
		})
	}
}

func TestValidateApplyServiceNames(t *testing.T) {
	req := &berthv1.ApplyRequest{Namespace: "default", App: "shop", Services: []*berthv1.Service{
		{Name: "my_web", Spec: &berthv1.ServiceSpec{Image: "busybox"}},
		{Name: "web", Spec: &berthv1.ServiceSpec{Image: "busybox", Networks: []*berthv1.ServiceNetwork{{Network: "nowhere"}}}},
	}}
	errs := ValidateApply(req)
	want := []string{`service "my_web": service name "my_web" is not a valid DNS name`, `service "web": networks.nowhere: network "nowhere" is not defined`}
	if len(errs) != len(want) {
		t.Fatalf("ValidateApply() =\n%v\nwant %q", errs, want)
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, errs[i], w)
		}
	}
}
