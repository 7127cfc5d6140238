package dns

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// ListenAddr is where each container's name server listens, inside the
// container's network namespace, as with Docker's embedded DNS.
const ListenAddr = "127.0.0.11:53"

// ResolvConf is a container's /etc/resolv.conf: the container's own name
// server, the search domains (callers pass the app's name first, then the
// service's dns_search), and "ndots:0" then the service's dns_options.
// Like Docker, ndots:0 makes a bare service name go to the server as is,
// before any search domain. Duplicates go; an option given again with
// another value (the service's "ndots:2") replaces the earlier one in
// place.
func ResolvConf(search []string, options []string) []byte {
	var b bytes.Buffer
	b.WriteString("nameserver 127.0.0.11\n")
	if s := dedupe(search); len(s) > 0 {
		b.WriteString("search " + strings.Join(s, " ") + "\n")
	}
	opts := []string{"ndots:0"}
	for _, o := range options {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		key, _, _ := strings.Cut(o, ":")
		replaced := false
		for i, prev := range opts {
			if k, _, _ := strings.Cut(prev, ":"); k == key {
				opts[i], replaced = o, true
				break
			}
		}
		if !replaced {
			opts = append(opts, o)
		}
	}
	b.WriteString("options " + strings.Join(opts, " ") + "\n")
	return b.Bytes()
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Hosts is a container's /etc/hosts: localhost, the container's first
// address with its host name, then the service's extra_hosts in order. An
// invalid addr leaves out the container's own line; an extra host without
// an address or name is left out.
func Hosts(hostname string, addr netip.Addr, extra []*berthv1.ExtraHost) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	if addr.IsValid() && hostname != "" {
		b.WriteString(addr.String() + "\t" + hostname + "\n")
	}
	for _, h := range extra {
		if h.GetAddress() == "" || h.GetHostname() == "" {
			continue
		}
		b.WriteString(h.GetAddress() + "\t" + h.GetHostname() + "\n")
	}
	return b.Bytes()
}

// Hostname is a container's /etc/hostname.
func Hostname(name string) []byte {
	return []byte(name + "\n")
}

// TaskHostname is a container's host name: the service's hostname if it
// sets one, else the task id cut to 63 bytes (the longest DNS label).
func TaskHostname(specHostname, taskID string) string {
	if specHostname != "" {
		return specHostname
	}
	if len(taskID) > 63 {
		return taskID[:63]
	}
	return taskID
}

// DefaultResolvConf is where NodeResolvers reads the node's resolvers.
const DefaultResolvConf = "/etc/resolv.conf"

// NodeResolvers returns the name servers of the resolv.conf at path
// (DefaultResolvConf if empty) as "ip:port". As resolv.conf(5) says, a
// file without nameserver lines, or no file, means the server on the
// local machine. The agent forwards from the node's own network
// namespace, so a loopback resolver (systemd-resolved's 127.0.0.53)
// works.
func NodeResolvers(path string) []string {
	if path == "" {
		path = DefaultResolvConf
	}
	var out []string
	if data, err := os.ReadFile(path); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "nameserver" {
				continue
			}
			if addr, ok := upstreamAddr(f[1]); ok {
				out = append(out, addr)
			}
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:53"}
	}
	return out
}

// upstreamAddr reads a resolver as "ip", "ip:port", "[ipv6]:port" or
// "ipv6%zone" and returns it as "ip:port" with port 53 by default.
func upstreamAddr(s string) (string, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(a.String(), "53"), true
	}
	return "", false
}

// upstreamAddrs reads each resolver with upstreamAddr, dropping those
// that are not addresses.
func upstreamAddrs(ss []string) []string {
	var out []string
	for _, s := range ss {
		if a, ok := upstreamAddr(strings.TrimSpace(s)); ok {
			out = append(out, a)
		}
	}
	return out
}
