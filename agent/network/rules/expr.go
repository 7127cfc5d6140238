package rules

import (
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The small expression lists the ruleset is made of, each the netlink
// form of a piece of nft syntax. Register 1 holds the value under test;
// register 2 a second operand (the port of a dnat).

const (
	reg1 = 1
	reg2 = 2
)

// Offsets in the IPv4 header and in TCP, UDP and SCTP headers.
const (
	offIPSrc  = 12
	offIPDst  = 16
	offL4Dest = 2
)

// protoNumbers are the protocols a published port may have.
var protoNumbers = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}

func ip4(a netip.Addr) []byte { b := a.As4(); return b[:] }

func u32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// loadIP loads the IPv4 source (offIPSrc) or destination (offIPDst).
func loadIP(off uint32) expr.Any {
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}
}

// ipIs: ip saddr|daddr == a.
func ipIs(off uint32, a netip.Addr) []expr.Any {
	return []expr.Any{loadIP(off), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ip4(a)}}
}

// ipIn: ip saddr|daddr p (a prefix).
func ipIn(off uint32, p netip.Prefix) []expr.Any {
	return []expr.Any{
		loadIP(off),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: prefixMask(p.Bits()), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ip4(p.Masked().Addr())},
	}
}

func prefixMask(bits int) []byte {
	var v uint32
	if bits > 0 {
		v = ^uint32(0) << (32 - bits)
	}
	return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// ipInSet: ip saddr|daddr [!=] @set.
func ipInSet(off uint32, set string, id uint32, invert bool) []expr.Any {
	return []expr.Any{loadIP(off), &expr.Lookup{SourceRegister: reg1, SetName: set, SetID: id, Invert: invert}}
}

// l4Port: meta l4proto P th dport port.
func l4Port(proto byte, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: offL4Dest, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// markHas: meta mark & bits != 0.
func markHas(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(bits), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)},
	}
}

// markAdd: meta mark set meta mark | bits.
func markAdd(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(^bits), Xor: u32(bits)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// ctState: ct state & bits != 0 (ct state established,related).
func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: u32(bits), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: u32(0)},
	}
}

// daddrLocal: fib daddr type local.
func daddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: u32(unix.RTN_LOCAL)},
	}
}

// iifnamePrefix: iifname "prefix*".
func iifnamePrefix(prefix string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte(prefix)},
	}
}

// oifnamePrefix: oifname "prefix*".
func oifnamePrefix(prefix string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte(prefix)},
	}
}

// snat: snat to a.
func snat(a netip.Addr) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: ip4(a)},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1},
	}
}

// dnat: dnat to a, or a:port when port is not 0.
func dnat(a netip.Addr, port uint16) []expr.Any {
	e := []expr.Any{&expr.Immediate{Register: reg1, Data: ip4(a)}}
	nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1}
	if port != 0 {
		e = append(e, &expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(port)})
		nat.RegProtoMin = reg2
		nat.Specified = true
	}
	return append(e, nat)
}

func verdict(k expr.VerdictKind, chain string) expr.Any {
	return &expr.Verdict{Kind: k, Chain: chain}
}

// reject: reject (with an ICMP port unreachable, which a TCP connect
// reports as refused).
func reject() expr.Any {
	return &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable}
}

func join(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// icmpPortUnreachable is the ICMP destination-unreachable code "port
// unreachable" (RFC 792).
const icmpPortUnreachable = 3
