package version

import (
	"errors"
	"strings"
	"testing"
)

func TestSkew(t *testing.T) {
	for _, tc := range []struct {
		agent, server string
		ok            bool
		upgrade       string // in the error: "upgrade the ROLE to vX.Y"
	}{
		{"v0.3.0", "v0.3.0", true, ""},
		{"v0.3.0", "v0.3.7", true, ""},
		{"v0.3.2", "v0.4.0", true, ""},
		{"v0.4.0", "v0.3.2", true, ""},
		{"0.4.0", "v0.3.2", true, ""},
		{"v0.2.9", "v0.4.0", false, "upgrade the agent to v0.4"},
		{"v0.6.0", "v0.4.1", false, "upgrade the server to v0.6"},
		{"v1.4.0", "v2.4.0", false, "upgrade the agent to v2.4"},
		{"v1.0.0", "v0.9.0", false, "upgrade the server to v1.0"},
		// Between tags, as git describe says: the last tag counts.
		{"v0.3.0-5-gabc1234", "v0.4.0", true, ""},
		{"v0.3.0-5-gabc1234-dirty", "v0.5.0", false, "upgrade the agent to v0.5"},
		{"v0.0.0-dev+abc1234", "v0.0.0-dev+def5678", true, ""},
		{"v0.0.0-dev+abc1234", "v0.2.0", false, "upgrade the agent to v0.2"},
		// Not semver: not checked.
		{"dev", "v0.9.0", true, ""},
		{"abc1234", "v3.1.0", true, ""},
		{"dev", "dev", true, ""},
	} {
		err := Skew(Side{"agent", tc.agent}, Side{"server", tc.server})
		if tc.ok {
			if err != nil {
				t.Errorf("Skew(%s, %s) = %v, want nil", tc.agent, tc.server, err)
			}
			continue
		}
		if !errors.Is(err, ErrSkew) {
			t.Errorf("Skew(%s, %s) = %v, want ErrSkew", tc.agent, tc.server, err)
			continue
		}
		for _, want := range []string{"agent " + tc.agent, "server " + tc.server, tc.upgrade} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Skew(%s, %s) = %q, want it to say %q", tc.agent, tc.server, err, want)
			}
		}
	}
}

func TestMajorMinor(t *testing.T) {
	for v, want := range map[string]string{"v0.3.1": "v0.3", "1.2.3": "v1.2", "v0.3.0-5-gabc": "v0.3", "dev": ""} {
		if got := MajorMinor(v); got != want {
			t.Errorf("MajorMinor(%q) = %q, want %q", v, got, want)
		}
	}
}
