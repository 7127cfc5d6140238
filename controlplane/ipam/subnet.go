// Package ipam hands out the addresses of Berth's networks: each network's
// subnet from the cluster's network range, and the addresses inside one.
// It is pure: callers pass what is in use and store what they are given.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrRangeFull says every subnet of the size asked for overlaps one in use.
var ErrRangeFull = errors.New("no free subnet left")

// Overlaps reports whether a and b share an address.
func Overlaps(a, b netip.Prefix) bool {
	return a.Masked().Overlaps(b.Masked())
}

// NextSubnet returns the lowest /bits subnet of pool that overlaps none of
// used. Lowest first keeps a cluster's networks packed at the start of its
// range, so the subnets are easy to read and a freed one is taken again.
func NextSubnet(pool netip.Prefix, bits int, used []netip.Prefix) (netip.Prefix, error) {
	if !pool.IsValid() || !pool.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("network range %s is not an IPv4 range", pool)
	}
	if bits < pool.Bits() || bits > 32 {
		return netip.Prefix{}, fmt.Errorf("a /%d subnet does not fit in network range %s", bits, pool)
	}
	pool = pool.Masked()
	start := subnetNum(pool.Addr())
	end := start + (uint64(1) << (32 - pool.Bits())) // one past the last address
	step := uint64(1) << (32 - bits)
	for at := start; at < end; {
		cand := netip.PrefixFrom(subnetAddr(at), bits)
		next := at + step
		free := true
		for _, u := range used {
			if !u.IsValid() || !Overlaps(cand, u) {
				continue
			}
			free = false
			// Skip past the whole used prefix, staying aligned to step.
			last := subnetNum(u.Masked().Addr()) + (uint64(1) << (32 - u.Bits()))
			if last > next {
				next = (last + step - 1) / step * step
			}
		}
		if free {
			return cand, nil
		}
		at = next
	}
	return netip.Prefix{}, fmt.Errorf("every /%d subnet of %s overlaps a network's: %w; free one with berth network rm, or start the servers with a larger --network-range", bits, pool, ErrRangeFull)
}

// subnetNum is an IPv4 address as a number.
func subnetNum(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
}

// subnetAddr is the IPv4 address of a number.
func subnetAddr(v uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
