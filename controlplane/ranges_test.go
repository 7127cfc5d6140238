package controlplane

import (
	"strings"
	"testing"
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
