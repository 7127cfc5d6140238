package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"time"
)

// DefaultNetNSDir is where the named network namespaces are bind-mounted.
// It is the directory `ip netns` reads, so an operator can inspect a
// container's network with `ip netns exec`.
const DefaultNetNSDir = "/var/run/netns"

// Config describes the network of one node.
type Config struct {
	// Name is the agent's node name. Several agents may share one machine,
	// so the overlay device, the rule table and the netns names all
	// derive from it.
	Name string
	// NodeID is the node's id in the cluster: the network map names
	// nodes by id.
	NodeID string
	// DataDir is the agent's data directory. The network keeps its
	// attachment records and each container's resolver files under
	// DataDir/network.
	DataDir string
	// Subnet is this node's container subnet in CIDR form, given by the
	// control plane (for example 10.210.3.0/24); its first address is the
	// node's own on the overlay.
	Subnet string
	// ContainerRange is the range every node's subnet comes from.
	ContainerRange string
	// Address is the node's IP address, where other nodes send its
	// overlay traffic.
	Address string
	// NetNSDir is where network namespaces are bind-mounted; empty means
	// DefaultNetNSDir.
	NetNSDir string
	// VXLANPort is the overlay's UDP port, the same on every node; 0
	// means 4789.
	VXLANPort int
	// Programmed, when set, is told for each change of a task's place
	// or readiness how long it took from the control plane seeing it to
	// this node's names, routes and rules following it.
	Programmed func(time.Duration)
	// ResolvConf is the node's resolver configuration, whose nameservers
	// answer the names the cluster does not know; empty means
	// /etc/resolv.conf.
	ResolvConf string
}

// withDefaults returns a copy of c with the empty optional fields filled.
func (c Config) withDefaults() Config {
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
	}
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	return c
}

// Validate reports every problem in c, each saying which field is wrong and
// how to fix it. It expects defaults to be applied already.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("network config: Name is empty; set it to the agent's node name"))
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("network config: DataDir %q must be an absolute path to the agent's data directory", c.DataDir))
	}
	if !filepath.IsAbs(c.NetNSDir) {
		errs = append(errs, fmt.Errorf("network config: NetNSDir %q must be an absolute path", c.NetNSDir))
	}
	subnet, err := parseSubnet(c.Subnet)
	if err != nil {
		errs = append(errs, err)
	}
	if r, err := netip.ParsePrefix(c.ContainerRange); err != nil || !r.Addr().Is4() {
		errs = append(errs, fmt.Errorf("network config: ContainerRange %q is not an IPv4 CIDR like 10.210.0.0/16 (the server's --container-range)", c.ContainerRange))
	} else if subnet.IsValid() && !r.Masked().Contains(subnet.Addr()) {
		errs = append(errs, fmt.Errorf("network config: Subnet %s is outside ContainerRange %s", subnet, r))
	}
	if a, err := netip.ParseAddr(c.Address); err != nil || !a.Is4() {
		errs = append(errs, fmt.Errorf("network config: Address %q is not the node's IPv4 address; give the agent a --listen address with an IPv4 host", c.Address))
	}
	if c.VXLANPort < 0 || c.VXLANPort > 65535 {
		errs = append(errs, fmt.Errorf("network config: VXLANPort %d is outside 0-65535", c.VXLANPort))
	}
	return errors.Join(errs...)
}

// parseSubnet checks that s is an IPv4 network with room for the node's
// own address.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network config: Subnet %q is not a CIDR like 10.210.3.0/24: %w", s, err)
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("network config: Subnet %q must be an IPv4 network of /30 or larger", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("network config: Subnet %q has host bits set; use %s", s, p.Masked())
	}
	return p, nil
}

// netnsPrefix starts the names of the node's container network
// namespaces: "berth-" and 8 hex digits of the node name, so agents
// sharing a machine never touch each other's.
func netnsPrefix(node string) string {
	sum := sha256.Sum256([]byte(node))
	return "berth-" + hex.EncodeToString(sum[:4]) + "-"
}

// NetNSPrefix is how the names of node's container network namespaces
// (files in DefaultNetNSDir) begin; the rest is the container id. Tests
// that count namespaces a node left behind read it.
func NetNSPrefix(node string) string { return netnsPrefix(node) }

// idPattern is the container ID syntax the network accepts.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// maxIDLen keeps netns file names well under the 255-byte limit.
const maxIDLen = 200

func validateID(id string) error {
	if len(id) > maxIDLen || !idPattern.MatchString(id) {
		return fmt.Errorf("network: container id %q is invalid: use 1-%d letters, digits, '_', '.' or '-', starting with a letter or digit", id, maxIDLen)
	}
	return nil
}
