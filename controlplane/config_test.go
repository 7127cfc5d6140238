package controlplane

import (
	"strings"
	"testing"
	"time"
)

func TestAddressRanges(t *testing.T) {
	tests := []struct {
		container, network, wantErr string
	}{
		{container: "10.210.0.0/16", network: "10.128.0.0/12"},
		{container: "10.210.0.0/16", network: "10.200.0.0/8", wantErr: "network range 10.0.0.0/8 overlaps container range 10.210.0.0/16"},
		{container: "10.210.0.0/16", network: "10.210.128.0/20", wantErr: "overlaps"},
		{container: "10.210.0.0/16", network: "10.128.0.0/25", wantErr: "at least a /24"},
		{container: "10.210.0.0/16", network: "fd00::/48", wantErr: "not an IPv4 range"},
		{container: "nonsense", network: "10.128.0.0/12", wantErr: "container range"},
	}
	for _, tt := range tests {
		_, _, err := addressRanges(tt.container, tt.network)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("addressRanges(%s, %s) = %v", tt.container, tt.network, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("addressRanges(%s, %s) = %v, want %q", tt.container, tt.network, err, tt.wantErr)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{DataDir: "/d"}.withDefaults()
	if c.Listen != DefaultListen || c.ContainerRange != DefaultContainerRange || c.NetworkRange == "" || c.Log == nil || c.AuditRetention == 0 {
		t.Errorf("defaults not filled in: %+v", c)
	}
	if c.LeaderLease != embeddedLeaderLease {
		t.Errorf("leader lease on the embedded etcd = %s, want %s", c.LeaderLease, embeddedLeaderLease)
	}
	if ext := (Config{DataDir: "/d", EtcdEndpoints: []string{"http://127.0.0.1:2379"}}).withDefaults(); ext.LeaderLease != DefaultLeaderLease {
		t.Errorf("leader lease on an external etcd = %s, want %s", ext.LeaderLease, DefaultLeaderLease)
	}
	if set := (Config{DataDir: "/d", Listen: "0.0.0.0:1", LeaderLease: time.Minute}).withDefaults(); set.Listen != "0.0.0.0:1" || set.LeaderLease != time.Minute {
		t.Errorf("defaults replaced values that were set: %+v", set)
	}
	if err := (Config{DataDir: "/d"}).withDefaults().Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, `--listen "127.0.0.1" is not a host:port`},
		{"bad http listen", func(c *Config) { c.HTTPListen = "nope" }, "--http-listen"},
		{"overlapping ranges", func(c *Config) { c.NetworkRange = "10.210.0.0/20" }, "overlaps container range"},
		{"short audit retention", func(c *Config) { c.AuditRetention = time.Second }, "audit"},
		{"etcd TLS without endpoints", func(c *Config) { c.EtcdTLS.CAFile = "/ca.pem" }, "--etcd-endpoints"},
		{"two keys", func(c *Config) { c.UnlockKey, c.KEKFile = "a2V5", "/kek" }, "keep one"},
		{"negative grace", func(c *Config) { c.NodeDownGrace = -time.Second }, "--node-down-grace -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{DataDir: "/d"}.withDefaults()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
