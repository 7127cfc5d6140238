package network

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Port publishes a container port on the host.
type Port struct {
	// Target is the port the container listens on.
	Target uint32 `json:"target"`
	// Published is the host port; it must be set.
	Published uint32 `json:"published"`
	// Protocol is "tcp" (the default when empty), "udp" or "sctp".
	Protocol string `json:"protocol,omitempty"`
	// HostIP restricts the published port to one host address; empty means
	// every address, 127.0.0.1 included.
	HostIP string `json:"host_ip,omitempty"`
}

// normalizePorts validates ports and returns them with defaults applied, in
// a stable order, so two calls with the same ports compare equal.
func normalizePorts(ports []Port) ([]Port, error) {
	var errs []error
	out := make([]Port, 0, len(ports))
	for i, p := range ports {
		p.Protocol = strings.ToLower(p.Protocol)
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" && p.Protocol != "sctp" {
			errs = append(errs, fmt.Errorf("port %d: protocol %q is not tcp, udp or sctp", i, p.Protocol))
		}
		if p.Target == 0 || p.Target > 65535 {
			errs = append(errs, fmt.Errorf("port %d: target port %d is outside 1-65535", i, p.Target))
		}
		if p.Published == 0 || p.Published > 65535 {
			errs = append(errs, fmt.Errorf("port %d: published port %d is outside 1-65535; the agent needs a fixed host port", i, p.Published))
		}
		if p.HostIP != "" {
			addr, err := netip.ParseAddr(p.HostIP)
			if err != nil || !addr.Is4() {
				errs = append(errs, fmt.Errorf("port %d: host IP %q is not an IPv4 address", i, p.HostIP))
			} else {
				p.HostIP = addr.String()
			}
		}
		out = append(out, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("network: invalid published ports: %w", err)
	}
	slices.SortFunc(out, comparePorts)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			return nil, fmt.Errorf("network: published port %d/%s is listed twice", out[i].Published, out[i].Protocol)
		}
	}
	return out, nil
}

func comparePorts(a, b Port) int {
	if c := strings.Compare(a.HostIP, b.HostIP); c != 0 {
		return c
	}
	if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
		return c
	}
	if a.Published != b.Published {
		return int(a.Published) - int(b.Published)
	}
	return int(a.Target) - int(b.Target)
}
