// Package nodecheck checks what a node needs to run containers: the
// runtime answers, the node's container subnet is its own, and the data
// directory's file system has room (bytes and inodes). Each check is a
// pure evaluation of facts a probe gathers, so the rules are tested with
// fake probes; a Checker runs the probes at start, every few seconds, and
// at once when asked (a container create failed), and reports the
// conditions when any changed.
//
// Berth's container network is its own datapath (veths, a VXLAN device,
// nftables), not CNI: there are no CNI plugins to check, so the "cni"
// condition type of api/nodestate is not reported by this agent.
package nodecheck

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/berthproject/berth/api/nodestate"
)

// Result is one check's verdict.
type Result struct {
	// Type is the condition type (api/nodestate: runtime, network, disk).
	Type string
	OK   bool
	// Message says, when not OK, what is wrong and how to fix it.
	Message string
}

func pass(typ string) Result { return Result{Type: typ, OK: true} }

func fail(typ, format string, args ...any) Result {
	return Result{Type: typ, Message: fmt.Sprintf(format, args...)}
}

// EvalRuntime judges the runtime probe: err is what asking containerd
// for its version returned, address where it was asked.
func EvalRuntime(address string, err error) Result {
	if err == nil {
		return pass(nodestate.Runtime)
	}
	return fail(nodestate.Runtime, "containerd at %s does not answer (%v): start containerd there (`make setup` starts it on a development machine)", address, err)
}

// Holder is an IPv4 address an interface of the node's network namespace
// holds.
type Holder struct {
	// Interface is the interface's name; Kind its type ("bridge",
	// "vxlan", "veth", "device", ...).
	Interface, Kind string
	// Prefix is the address with its prefix length, as `ip addr` shows it.
	Prefix netip.Prefix
}

// NetworkFacts is what the network probe found.
type NetworkFacts struct {
	// Subnet is the node's container subnet; invalid while the control
	// plane has not given one (the network is not checked then).
	Subnet netip.Prefix
	// Own is the name of the node's own device, the only interface that
	// may hold an address in Subnet.
	Own string
	// Holders are every IPv4 address of the namespace.
	Holders []Holder
}

// EvalNetwork judges the network probe: the node's container subnet is
// its own when no interface but the node's own device holds an address in
// it. An interface with an address of a wider network (the host's LAN in
// 10.0.0.0/8, say) does not hold the subnet: the node's routes to its
// containers are more specific. ok is false when there is nothing to
// judge yet (no subnet).
func EvalNetwork(f NetworkFacts, probeErr error) (r Result, ok bool) {
	if !f.Subnet.IsValid() {
		return Result{}, false
	}
	if probeErr != nil {
		return fail(nodestate.Network, "cannot list the node's interfaces to check its container subnet %s: %v", f.Subnet, probeErr), true
	}
	var foreign []Holder
	for _, h := range f.Holders {
		if h.Interface != f.Own && f.Subnet.Contains(h.Prefix.Addr()) {
			foreign = append(foreign, h)
		}
	}
	if len(foreign) == 0 {
		return pass(nodestate.Network), true
	}
	h := foreign[0]
	what := "interface " + h.Interface
	if h.Kind != "" {
		what += " (a " + h.Kind + ", " + h.Prefix.String() + ")"
	}
	more := ""
	if len(foreign) > 1 {
		more = fmt.Sprintf(" and %d more", len(foreign)-1)
	}
	return fail(nodestate.Network,
		"the node's container subnet %s is held by %s%s, not by this node's device %s: remove it (`ip link del %s`) or move its address out of %s",
		f.Subnet, what, more, f.Own, h.Interface, f.Subnet), true
}

// Floor is a lower bound of free space: a number (bytes, or inodes) or a
// share of the total.
type Floor struct {
	// Amount is an absolute floor; used when Percent is 0.
	Amount uint64
	// Percent is a floor as a share of the total, 0-100.
	Percent float64
}

// String writes f as ParseFloor reads it.
func (f Floor) String() string {
	if f.Percent > 0 {
		return strconv.FormatFloat(f.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatUint(f.Amount, 10)
}

// min is the floor's absolute value on a file system of total units.
func (f Floor) min(total uint64) uint64 {
	if f.Percent > 0 {
		return uint64(float64(total) * f.Percent / 100)
	}
	return f.Amount
}

var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
}

// ParseFloor reads a floor: "5%", "500MiB", "2G", "100000" (a plain
// number: bytes, or inodes).
func ParseFloor(s string) (Floor, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v >= 100 {
			return Floor{}, fmt.Errorf("floor %q: a percentage must be a number from 0 to below 100, like 5%%", s)
		}
		return Floor{Percent: v}, nil
	}
	mult := uint64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return Floor{}, fmt.Errorf("floor %q: want a size like 500MiB, a number, or a percentage like 5%%", s)
	}
	return Floor{Amount: v * mult}, nil
}

// DiskFacts is what statfs says of the data directory's file system.
type DiskFacts struct {
	// Path is the directory checked.
	Path string
	// Total and Free are bytes (free to unprivileged users).
	Total, Free uint64
	// Inodes and FreeInodes are inode counts; Inodes is 0 on file systems
	// without a fixed number of inodes, which are not checked for them.
	Inodes, FreeInodes uint64
}

// EvalDisk judges the disk probe against the floors for free bytes and
// free inodes.
func EvalDisk(f DiskFacts, probeErr error, bytes, inodes Floor) Result {
	if probeErr != nil {
		return fail(nodestate.Disk, "cannot read the free space of %s: %v", f.Path, probeErr)
	}
	if need := bytes.min(f.Total); f.Free < need {
		// The message names the floor, not the free amount, so that it
		// stays the same while the disk stays full: a changed message is
		// a changed condition, written to the node record.
		return fail(nodestate.Disk, "the file system of %s (%s) has less than %s free (--disk-floor %s): free space there (unused images, old logs, other files) or lower the floor",
			f.Path, sizeWords(f.Total), sizeWords(need), bytes)
	}
	if need := inodes.min(f.Inodes); f.Inodes > 0 && f.FreeInodes < need {
		return fail(nodestate.Disk, "the file system of %s (%d inodes) has fewer than %d free inodes (--inode-floor %s): remove files there (many small ones use inodes up) or lower the floor",
			f.Path, f.Inodes, need, inodes)
	}
	return pass(nodestate.Disk)
}

// sizeWords writes n bytes for people: "512 MiB", "1.5 GiB".
func sizeWords(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// errorHints are words in a container's failure that point at one of the
// checked conditions: on such a failure the checker looks at once instead
// of at its next tick.
var errorHints = []string{
	"no space left on device", "disk quota exceeded", "too many open files",
	"containerd", "connection refused", "transport is closing", "unavailable",
	"network:", "overlay", "file exists",
}

// PointsAtCondition reports whether a container create's or start's
// error may come from a failing condition.
func PointsAtCondition(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, h := range errorHints {
		if strings.Contains(msg, h) {
			return true
		}
	}
	return false
}
