package network

import (
	"reflect"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := Config{
		Name: "n1", NodeID: "id1", DataDir: "/var/lib/berth",
		Subnet: "10.210.3.0/24", ContainerRange: "10.210.0.0/16", Address: "192.0.2.10",
	}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // empty: valid
	}{
		{"valid", func(*Config) {}, nil},
		{"default VXLAN port and netns dir", func(c *Config) { c.VXLANPort, c.NetNSDir = 0, "" }, nil},
		{"highest VXLAN port", func(c *Config) { c.VXLANPort = 65535 }, nil},
		{"no name", func(c *Config) { c.Name = "" }, []string{"Name is empty"}},
		{"no data dir", func(c *Config) { c.DataDir = "" }, []string{`DataDir ""`}},
		{"relative data dir", func(c *Config) { c.DataDir = "data" }, []string{`DataDir "data" must be an absolute path`}},
		{"relative netns dir", func(c *Config) { c.NetNSDir = "netns" }, []string{`NetNSDir "netns" must be an absolute path`}},
		{"subnet not a CIDR", func(c *Config) { c.Subnet = "10.210.3.0" }, []string{`Subnet "10.210.3.0" is not a CIDR`}},
		{"no subnet", func(c *Config) { c.Subnet = "" }, []string{`Subnet "" is not a CIDR`}},
		{"IPv6 subnet", func(c *Config) { c.Subnet = "fd00::/64" }, []string{`Subnet "fd00::/64" must be an IPv4 network`}},
		{"subnet too small", func(c *Config) { c.Subnet = "10.210.3.0/31" }, []string{"/30 or larger"}},
		{"subnet with host bits", func(c *Config) { c.Subnet = "10.210.3.7/24" }, []string{"use 10.210.3.0/24"}},
		{"container range not a CIDR", func(c *Config) { c.ContainerRange = "10.210.0.0" }, []string{`ContainerRange "10.210.0.0" is not an IPv4 CIDR`}},
		{"IPv6 container range", func(c *Config) { c.ContainerRange = "fd00::/48" }, []string{`ContainerRange "fd00::/48" is not an IPv4 CIDR`}},
		{"subnet outside the range", func(c *Config) { c.Subnet = "10.211.3.0/24" }, []string{"Subnet 10.211.3.0/24 is outside ContainerRange 10.210.0.0/16"}},
		{"IPv6 address", func(c *Config) { c.Address = "2001:db8::1" }, []string{`Address "2001:db8::1" is not the node's IPv4 address`}},
		{"host name for an address", func(c *Config) { c.Address = "node1.example" }, []string{`Address "node1.example"`}},
		{"no address", func(c *Config) { c.Address = "" }, []string{`Address ""`}},
		{"negative VXLAN port", func(c *Config) { c.VXLANPort = -1 }, []string{"VXLANPort -1 is outside 0-65535"}},
		{"VXLAN port too big", func(c *Config) { c.VXLANPort = 65536 }, []string{"VXLANPort 65536 is outside 0-65535"}},
		{
			"every field wrong at once",
			func(c *Config) {
				*c = Config{DataDir: "rel", NetNSDir: "rel", Subnet: "x", ContainerRange: "y", Address: "z", VXLANPort: 70000}
			},
			[]string{"Name is empty", `DataDir "rel"`, `NetNSDir "rel"`, `Subnet "x"`, `ContainerRange "y"`, `Address "z"`, "VXLANPort 70000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			err := cfg.withDefaults().Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v, want an error containing %q", err, want)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.NetNSDir != DefaultNetNSDir || c.ResolvConf != "/etc/resolv.conf" {
		t.Errorf("withDefaults() = NetNSDir %q, ResolvConf %q; want %q and /etc/resolv.conf", c.NetNSDir, c.ResolvConf, DefaultNetNSDir)
	}
	set := Config{NetNSDir: "/run/x", ResolvConf: "/tmp/r"}.withDefaults()
	if set.NetNSDir != "/run/x" || set.ResolvConf != "/tmp/r" {
		t.Errorf("withDefaults() replaced set fields: %+v", set)
	}
}

func TestNetNSPrefixFollowsNodeName(t *testing.T) {
	a, b := netnsPrefix("node-a"), netnsPrefix("node-b")
	if a == b {
		t.Fatalf("netns prefix of two nodes is %q for both", a)
	}
	if a != netnsPrefix("node-a") {
		t.Error("netns prefix is not stable: a restarted agent would not find its namespaces")
	}
	// "berth-" and 8 hex digits and "-".
	if len(a) != 15 || !strings.HasPrefix(a, "berth-") || !strings.HasSuffix(a, "-") ||
		strings.Trim(a[6:14], "0123456789abcdef") != "" {
		t.Errorf("netnsPrefix(node-a) = %q, want berth-<8 hex>-", a)
	}
}

func TestNormalizePorts(t *testing.T) {
	tests := []struct {
		name    string
		in      []Port
		want    []Port
		wantErr string
	}{
		{"none", nil, []Port{}, ""},
		{
			"defaults and order",
			[]Port{{Target: 80, Published: 8080, Protocol: "UDP"}, {Target: 80, Published: 8080, HostIP: "127.0.0.1"}},
			[]Port{{Target: 80, Published: 8080, Protocol: "udp"}, {Target: 80, Published: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}},
			"",
		},
		{"no published port", []Port{{Target: 80}}, nil, "published port 0"},
		{"target too big", []Port{{Target: 70000, Published: 1}}, nil, "target port 70000"},
		{"bad protocol", []Port{{Target: 1, Published: 1, Protocol: "icmp"}}, nil, `protocol "icmp"`},
		{"bad host ip", []Port{{Target: 1, Published: 1, HostIP: "localhost"}}, nil, `host IP "localhost"`},
		{"IPv6 host ip", []Port{{Target: 1, Published: 1, HostIP: "::1"}}, nil, `host IP "::1"`},
		{"duplicate", []Port{{Target: 1, Published: 2}, {Target: 1, Published: 2, Protocol: "tcp"}}, nil, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalizePorts(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("normalizePorts() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("normalizePorts() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("normalizePorts() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"abc", "task-1.2_3", "0abc", strings.Repeat("a", maxIDLen)} {
		if err := validateID(id); err != nil {
			t.Errorf("validateID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "-a", ".a", "a/b", "../x", "a b", "a\x00", strings.Repeat("a", maxIDLen+1)} {
		if err := validateID(id); err == nil {
			t.Errorf("validateID(%q) = nil, want an error", id)
		}
	}
}
