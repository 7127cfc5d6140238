package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestNextSubnet(t *testing.T) {
	tests := []struct {
		name    string
		pool    string
		bits    int
		used    []string
		want    string
		wantErr error
	}{
		{name: "empty pool", pool: "10.128.0.0/12", bits: 24, want: "10.128.0.0/24"},
		{name: "skips used", pool: "10.128.0.0/12", bits: 24, used: []string{"10.128.0.0/24", "10.128.1.0/24"}, want: "10.128.2.0/24"},
		{name: "takes a freed hole", pool: "10.128.0.0/12", bits: 24, used: []string{"10.128.0.0/24", "10.128.2.0/24"}, want: "10.128.1.0/24"},
		{name: "skips a larger user subnet", pool: "10.128.0.0/12", bits: 24, used: []string{"10.128.0.0/16"}, want: "10.129.0.0/24"},
		{name: "skips a smaller user subnet", pool: "10.128.0.0/12", bits: 24, used: []string{"10.128.0.64/29"}, want: "10.128.1.0/24"},
		{name: "ignores subnets outside the pool", pool: "10.128.0.0/12", bits: 24, used: []string{"192.168.0.0/24", "10.0.0.0/24"}, want: "10.128.0.0/24"},
		{name: "unmasked pool", pool: "10.128.5.7/12", bits: 24, want: "10.128.0.0/24"},
		{name: "used covers the pool", pool: "10.128.0.0/22", bits: 24, used: []string{"10.0.0.0/8"}, wantErr: ErrRangeFull},
		{name: "full", pool: "10.128.0.0/23", bits: 24, used: []string{"10.128.0.0/24", "10.128.1.0/24"}, wantErr: ErrRangeFull},
		{name: "last one", pool: "10.128.0.0/23", bits: 24, used: []string{"10.128.0.0/24"}, want: "10.128.1.0/24"},
		{name: "whole pool", pool: "10.128.0.0/24", bits: 24, want: "10.128.0.0/24"},
		{name: "top of the address space", pool: "255.255.255.0/24", bits: 25, used: []string{"255.255.255.0/25"}, want: "255.255.255.128/25"},
		{name: "subnet larger than pool", pool: "10.128.0.0/24", bits: 16, wantErr: errAny},
		{name: "ipv6 pool", pool: "fd00::/64", bits: 80, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NextSubnet(netip.MustParsePrefix(tt.pool), tt.bits, prefixes(tt.used...))
			switch {
			case tt.wantErr == errAny && err != nil:
			case tt.wantErr != nil && errors.Is(err, tt.wantErr):
			case tt.wantErr == nil && err == nil && got.String() == tt.want:
			default:
				t.Errorf("NextSubnet() = %v, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// errAny stands for any error in the table.
var errAny = errors.New("any error")

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/24", "10.0.0.0/24", true},
		{"10.0.0.0/24", "10.0.0.128/25", true},
		{"10.0.0.0/16", "10.0.200.0/24", true},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"10.0.0.5/24", "10.0.0.200/24", true}, // host bits do not matter
		{"10.0.0.0/24", "fd00::/8", false},
	}
	for _, tt := range tests {
		a, b := netip.MustParsePrefix(tt.a), netip.MustParsePrefix(tt.b)
		if got := Overlaps(a, b); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Overlaps(b, a); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}
