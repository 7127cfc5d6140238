package network

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/berthproject/berth/agent/network/dns"
)

// The generated files, by their path inside the container.
const (
	resolvConfPath = "/etc/resolv.conf"
	hostsPath      = "/etc/hosts"
	hostnamePath   = "/etc/hostname"
)

// filePaths maps each generated file of container id to its place on the
// node.
func (n *Node) filePaths(id string) map[string]string {
	dir := filepath.Join(n.files, id)
	return map[string]string{
		resolvConfPath: filepath.Join(dir, "resolv.conf"),
		hostsPath:      filepath.Join(dir, "hosts"),
		hostnamePath:   filepath.Join(dir, "hostname"),
	}
}

// writeFiles writes the resolver files of the container rec attaches:
// resolv.conf pointing at its DNS server, hosts with its own name and
// spec's extra hosts, and hostname (spec's, else the container id cut to
// a DNS label).
func (n *Node) writeFiles(spec AttachSpec, rec record) error {
	var addr netip.Addr
	if len(rec.Links) > 0 {
		addr = rec.Links[0].Address.Addr()
	}
	hostname := dns.TaskHostname(spec.Hostname, rec.ID)
	content := map[string][]byte{
		resolvConfPath: dns.ResolvConf(spec.Search, spec.Options),
		hostsPath:      dns.Hosts(hostname, addr, spec.ExtraHosts),
		hostnamePath:   dns.Hostname(hostname),
	}
	paths := n.filePaths(rec.ID)
	if err := os.MkdirAll(filepath.Dir(paths[hostsPath]), 0o755); err != nil {
		return fmt.Errorf("resolver files: %w", err)
	}
	for dst, b := range content {
		// Readable by the container's user, whoever it is; the agent
		// alone writes them.
		if err := os.WriteFile(paths[dst], b, 0o644); err != nil {
			return fmt.Errorf("resolver files: %w", err)
		}
	}
	return nil
}
