package agent

import (
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/nodecheck"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{DataDir: "/d", Server: "127.0.0.1:4242"}.withDefaults()
	if c.Name == "" || c.Log == nil || c.ContainerdRoot == "" {
		t.Errorf("defaults not filled in: %+v", c)
	}
	if c.ImageGCHighPercent != image.DefaultGCHighPercent || c.ImageGCLowPercent != image.DefaultGCLowPercent {
		t.Errorf("image cleanup thresholds %d/%d, want the defaults", c.ImageGCHighPercent, c.ImageGCLowPercent)
	}
	if c.DiskFloor != nodecheck.DefaultDiskFloor || c.InodeFloor != nodecheck.DefaultInodeFloor {
		t.Errorf("floors %q/%q, want the defaults", c.DiskFloor, c.InodeFloor)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	if set := (Config{DataDir: "/d", Server: "s:1", Name: "n1", ImageGCHighPercent: 90}).withDefaults(); set.Name != "n1" || set.ImageGCHighPercent != 90 {
		t.Errorf("defaults replaced values that were set: %+v", set)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data-dir is required"},
		{"no server", func(c *Config) { c.Server = " , " }, "--join is required"},
		{"unknown runtime", func(c *Config) { c.Runtime = "docker" }, `unknown runtime "docker"`},
		{"low above high", func(c *Config) { c.ImageGCLowPercent = 95 }, "--image-gc-low-percent"},
		{"bad disk floor", func(c *Config) { c.DiskFloor = "lots" }, "--disk-floor"},
		{"bad listen", func(c *Config) { c.Listen = "nowhere" }, `--listen "nowhere"`},
		{"failure rate above 1", func(c *Config) { c.FakeFailureRate = 2 }, "between 0 and 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{DataDir: "/d", Server: "127.0.0.1:4242"}.withDefaults()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
