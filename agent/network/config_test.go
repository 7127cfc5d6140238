package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestNamesFollowNodeName(t *testing.T) {
	a, b := namesFor("node-a"), namesFor("node-b")
	if a == b {
		t.Fatalf("names of two nodes are equal: %+v", a)
	}
	if a != namesFor("node-a") {
		t.Errorf("names are not stable for one node")
	}
	if len(a.bridge) > 15 {
		t.Errorf("bridge name %q is longer than the 15-byte interface name limit", a.bridge)
	}
	if !strings.HasPrefix(a.bridge, "berth") || !strings.HasPrefix(a.network, "berth-") {
		t.Errorf("names %+v do not start with berth", a)
	}
}

func TestConfigValidate(t *testing.T) {
	plugins := t.TempDir()
	for _, p := range requiredPlugins {
		if err := os.WriteFile(filepath.Join(plugins, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	good := Config{Name: "n1", DataDir: "/var/lib/berth", Subnet: "10.210.3.0/24", PluginDirs: []string{plugins}}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // empty: valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "Name is empty"},
		{"relative data dir", func(c *Config) { c.DataDir = "data" }, "DataDir"},
		{"bad subnet", func(c *Config) { c.Subnet = "10.210.3.0" }, "not a CIDR"},
		{"ipv6 subnet", func(c *Config) { c.Subnet = "fd00::/64" }, "IPv4"},
		{"subnet too small", func(c *Config) { c.Subnet = "10.0.0.0/31" }, "/30 or larger"},
		{"host bits", func(c *Config) { c.Subnet = "10.210.3.7/24" }, "use 10.210.3.0/24"},
		{"no plugins", func(c *Config) { c.PluginDirs = []string{t.TempDir()} }, `CNI plugin "bridge" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			err := cfg.withDefaults().Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConflist(t *testing.T) {
	n := namesFor("node-a")
	b, err := conflist(n, netip.MustParsePrefix("10.210.3.0/24"), "/data/network/ipam", true)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type         string          `json:"type"`
			Bridge       string          `json:"bridge"`
			Capabilities map[string]bool `json:"capabilities"`
			IPAM         struct {
				Type    string                `json:"type"`
				DataDir string                `json:"dataDir"`
				Ranges  [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, b)
	}
	if got.Name != n.network || len(got.Plugins) != 2 {
		t.Fatalf("conflist = %s, want network %s with bridge and portmap", b, n.network)
	}
	br, pm := got.Plugins[0], got.Plugins[1]
	if br.Type != "bridge" || br.Bridge != n.bridge || br.IPAM.Type != "host-local" ||
		br.IPAM.DataDir != "/data/network/ipam" || br.IPAM.Ranges[0][0]["subnet"] != "10.210.3.0/24" {
		t.Errorf("bridge plugin config = %+v", br)
	}
	if pm.Type != "portmap" || !pm.Capabilities["portMappings"] {
		t.Errorf("portmap plugin config = %+v", pm)
	}
	plain, err := conflist(n, netip.MustParsePrefix("10.210.3.0/24"), "/data/network/ipam", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(plain, &got); err != nil || len(got.Plugins) != 1 || got.Plugins[0].Type != "bridge" {
		t.Fatalf("conflist without ports = %s (%v), want the bridge alone", plain, err)
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
	for _, id := range []string{"abc", "task-1.2_3", strings.Repeat("a", maxIDLen)} {
		if err := validateID(id); err != nil {
			t.Errorf("validateID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range []string{"", "-a", "a/b", "../x", "a b", strings.Repeat("a", maxIDLen+1)} {
		if err := validateID(id); err == nil {
			t.Errorf("validateID(%q) = nil, want an error", id)
		}
	}
}
