package compose

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

func TestLoadConvertsNetworks(t *testing.T) {
	dir := writeProject(t, map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    networks:
      front:
        aliases: [www, site]
      back:
        priority: 10
      shared: {}
    hostname: web-host
    extra_hosts:
      - "db.local:10.0.0.5"
      - "api.local=10.0.0.6"
      - "v6.local:[::1]"
    dns: 1.1.1.1
    dns_search: [example.com, corp.example]
    dns_opt: ["ndots:2"]
    ports:
      - target: 80
        published: 8080
        mode: host
    deploy:
      endpoint_mode: dnsrr
  db:
    image: busybox
    networks: [back]
    deploy:
      endpoint_mode: vip
  fixed:
    image: busybox
    networks:
      back:
        ipv4_address: 10.20.0.9
  plain:
    image: busybox
networks:
  front:
    driver: overlay
    labels: {tier: front}
  back:
    name: shop-back
    internal: true
    ipam:
      config:
        - subnet: 10.20.0.0/24
  shared:
    external: true
`})
	p, err := loadDir(t, dir, Options{})
	if err != nil {
		t.Fatalf("Load() error:\n%v", err)
	}
	wantNetworks := []*berthv1.AppNetwork{
		{Name: "shop-back", Key: "back", Internal: true, Subnet: "10.20.0.0/24"},
		{Name: "proj_default", Key: "default"},
		{Name: "proj_front", Key: "front", Labels: map[string]string{"tier": "front"}},
		{Name: "shared", Key: "shared", External: true},
	}
	if len(p.Networks) != len(wantNetworks) {
		t.Fatalf("Networks = %v, want %v", p.Networks, wantNetworks)
	}
	for i, want := range wantNetworks {
		if !proto.Equal(p.Networks[i], want) {
			t.Errorf("Networks[%d] = %v, want %v", i, p.Networks[i], want)
		}
	}
	specs := map[string]*berthv1.ServiceSpec{}
	for _, s := range p.Services {
		specs[s.Name] = s.Spec
	}
	want := defaults(&berthv1.ServiceSpec{
		Image: "busybox",
		// By priority, then by key.
		Networks: []*berthv1.ServiceNetwork{
			{Network: "shop-back"},
			{Network: "proj_front", Aliases: []string{"www", "site"}},
			{Network: "shared"},
		},
		Hostname: "web-host",
		ExtraHosts: []*berthv1.ExtraHost{
			{Hostname: "api.local", Address: "10.0.0.6"},
			{Hostname: "db.local", Address: "10.0.0.5"},
			{Hostname: "v6.local", Address: "::1"},
		},
		Dns:          []string{"1.1.1.1"},
		DnsSearch:    []string{"example.com", "corp.example"},
		DnsOptions:   []string{"ndots:2"},
		Ports:        []*berthv1.PortSpec{{Target: 80, Published: 8080, Mode: berthv1.PublishMode_PUBLISH_MODE_HOST}},
		EndpointMode: berthv1.EndpointMode_ENDPOINT_MODE_DNSRR,
	})
	if !proto.Equal(specs["web"], want) {
		t.Errorf("spec of web =\n%v\nwant\n%v", specs["web"], want)
	}
	for name, nets := range map[string][]*berthv1.ServiceNetwork{
		"db":    {{Network: "shop-back"}},
		"fixed": {{Network: "shop-back", Ipv4Address: "10.20.0.9"}},
		"plain": {{Network: "proj_default"}},
	} {
		got := &berthv1.ServiceSpec{Networks: specs[name].GetNetworks()}
		if !proto.Equal(got, &berthv1.ServiceSpec{Networks: nets}) {
			t.Errorf("networks of %s = %v, want %v", name, specs[name].GetNetworks(), nets)
		}
	}
	if specs["db"].GetEndpointMode() != berthv1.EndpointMode_ENDPOINT_MODE_VIP {
		t.Errorf("endpoint mode of db = %v, want vip", specs["db"].GetEndpointMode())
	}
	wantWarnings := []string{`service "web": networks.back.priority is not supported yet and is ignored`}
	if len(p.Warnings) != len(wantWarnings) || !strings.HasSuffix(p.Warnings[0], wantWarnings[0]) {
		t.Errorf("Warnings = %q, want %q", p.Warnings, wantWarnings)
	}
}

func TestLoadNetworkWarnings(t *testing.T) {
	dir := writeProject(t, map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    network_mode: host
networks:
  back:
    driver: bridge
    driver_opts: {mtu: "1400"}
    attachable: true
    enable_ipv6: true
    ipam:
      driver: default
      config:
        - subnet: 10.20.0.0/24
          gateway: 10.20.0.1
`})
	p, err := loadDir(t, dir, Options{})
	if err != nil {
		t.Fatalf("Load() error:\n%v", err)
	}
	want := []string{
		"networks.back.attachable is not supported yet and is ignored",
		"networks.back.driver_opts is not supported yet and is ignored",
		"networks.back.enable_ipv6 is not supported yet and is ignored",
		"networks.back.ipam.config[].gateway is not supported yet and is ignored",
		"networks.back.ipam.driver is not supported yet and is ignored",
	}
	if len(p.Warnings) != len(want) {
		t.Fatalf("Warnings =\n%s\nwant\n%s", strings.Join(p.Warnings, "\n"), strings.Join(want, "\n"))
	}
	for i, w := range want {
		if !strings.HasSuffix(p.Warnings[i], w) {
			t.Errorf("Warnings[%d] = %q, want %q", i, p.Warnings[i], w)
		}
	}
	// network_mode leaves the service without networks.
	if nets := p.Services[0].GetSpec().GetNetworks(); len(nets) != 0 {
		t.Errorf("networks of web = %v, want none", nets)
	}
	if mode := p.Services[0].GetSpec().GetContainer().GetNetworkMode(); mode != "host" {
		t.Errorf("network mode of web = %q, want host", mode)
	}
}

func TestLoadNetworkErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		// want are substrings of the problems, in order.
		want []string
	}{
		{
			name: "undefined networks in both forms",
			file: "services:\n  web:\n    image: busybox\n    networks: [front, back]\n  db:\n    image: busybox\n    networks:\n      back: {}\nnetworks:\n  front: {}\n",
			want: []string{
				`compose.yaml:8: service "db": networks.back: network "back" is not defined`,
				`compose.yaml:4: service "web": networks.back: network "back" is not defined`,
			},
		},
		{
			name: "driver and subnets",
			file: `services:
  web:
    image: busybox
networks:
  a:
    driver: macvlan
  b:
    ipam:
      config:
        - subnet: 10.20.0.0/16
  c:
    ipam:
      config:
        - subnet: 10.20.5.0/24
        - subnet: 10.21.0.0/24
  d:
    ipam:
      config:
        - subnet: 10.30.0.1/24
  e:
    ipam:
      config:
        - subnet: 10.40.0.0/30
  f:
    ipam:
      config:
        - subnet: fd00::/64
`,
			want: []string{
				`compose.yaml:6: networks.a.driver: driver "macvlan" is not supported`,
				`compose.yaml:15: networks.c.ipam.config[1]: a network has one subnet`,
			},
		},
		{
			name: "subnets, checked once the networks convert",
			file: `services:
  web:
    image: busybox
networks:
  b:
    ipam:
      config:
        - subnet: 10.20.0.0/16
  c:
    ipam:
      config:
        - subnet: 10.20.5.0/24
  d:
    ipam:
      config:
        - subnet: 10.30.0.1/24
  e:
    ipam:
      config:
        - subnet: 10.40.0.0/30
  f:
    ipam:
      config:
        - subnet: fd00::/64
`,
			want: []string{
				`compose.yaml:12: networks.c.ipam.config[0].subnet: 10.20.5.0/24 overlaps 10.20.0.0/16 of network b`,
				`compose.yaml:16: networks.d.ipam.config[0].subnet: "10.30.0.1/24" has host bits set`,
				`compose.yaml:20: networks.e.ipam.config[0].subnet: "10.40.0.0/30" is too small`,
				`compose.yaml:24: networks.f.ipam.config[0].subnet: "fd00::/64" is not an IPv4 subnet`,
			},
		},
		{
			name: "service fields",
			file: `services:
  web_app:
    image: busybox
  web:
    image: busybox
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
    ports: ["8080:80"]
    networks:
      back:
        aliases: [Api]
        ipv4_address: 10.20.0.5
    extra_hosts: ["db.local:nowhere"]
    dns: [dns.example]
  other:
    image: busybox
    deploy:
      endpoint_mode: round-robin
    ports:
      - target: 80
        mode: everywhere
networks:
  back:
    ipam:
      config:
        - subnet: 10.20.0.0/24
`,
			want: []string{
				`compose.yaml:22: service "other": ports[0].mode: unknown mode "everywhere"`,
				`compose.yaml:19: service "other": deploy.endpoint_mode: unknown endpoint mode "round-robin"`,
				`compose.yaml:9: service "web": ports[0].mode: port 8080 is published in ingress mode`,
				`compose.yaml:12: service "web": networks.back.aliases[0]: alias "Api" is not a valid DNS name`,
				`compose.yaml:13: service "web": networks.back.ipv4_address: one address cannot go to each of 2 replicas`,
				`compose.yaml:14: service "web": extra_hosts[0]: "nowhere" is not an IP address`,
				`compose.yaml:15: service "web": dns[0]: "dns.example" is not an IP address`,
				`compose.yaml:2: service "web_app": service name "web_app" is not a valid DNS name`,
			},
		},
		{
			name: "addresses and aliases across services",
			file: `services:
  web:
    image: busybox
    networks:
      back:
        aliases: [api]
        ipv4_address: 10.30.0.5
  admin:
    image: busybox
    networks:
      back:
        aliases: [api, web]
        ipv4_address: 10.20.0.1
networks:
  back:
    ipam:
      config:
        - subnet: 10.20.0.0/24
`,
			want: []string{
				`compose.yaml:12: service "admin": networks.back.aliases[1]: alias "web" is the name of another service on network proj_back`,
				`compose.yaml:13: service "admin": networks.back.ipv4_address: 10.20.0.1 is the network's first address`,
				`compose.yaml:6: service "web": networks.back.aliases[0]: alias "api" is already an alias of service "admin"`,
				`compose.yaml:7: service "web": networks.back.ipv4_address: 10.30.0.5 is outside network proj_back's subnet 10.20.0.0/24`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{"compose.yaml": tt.file})
			p, err := loadDir(t, dir, Options{})
			if err == nil {
				t.Fatalf("Load() = %v, want an error", p)
			}
			var errs validation.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load() error %T %v, want validation.Errors", err, err)
			}
			msg := err.Error()
			last := 0
			for _, w := range tt.want {
				i := strings.Index(msg[last:], w)
				if i < 0 {
					t.Fatalf("Load() error:\n%s\nwant, in order:\n%s", msg, strings.Join(tt.want, "\n"))
				}
				last += i + len(w)
			}
		})
	}
}
