package network

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
)

// DefaultPluginDir is where Debian's containernetworking-plugins package
// installs the CNI plugins.
const DefaultPluginDir = "/usr/lib/cni"

// DefaultNetNSDir is where the named network namespaces are bind-mounted.
// It is the directory `ip netns` reads, so an operator can inspect a
// container's network with `ip netns exec`.
const DefaultNetNSDir = "/var/run/netns"

// requiredPlugins are the CNI plugin binaries the conflist refers to.
var requiredPlugins = []string{"bridge", "host-local", "portmap"}

// Config describes the network of one node.
type Config struct {
	// Name is the agent's node name. Several agents may share one machine,
	// so the bridge, the CNI network and the netns names all derive from it.
	Name string
	// DataDir is the agent's data directory. The network keeps its IPAM
	// state and attachment records under DataDir/network.
	DataDir string
	// Subnet is this node's IPv4 container subnet in CIDR form, given by the
	// control plane (for example 10.210.3.0/24). Its first address is the
	// bridge's gateway address.
	Subnet string
	// PluginDirs are searched for the CNI plugin binaries; empty means
	// DefaultPluginDir.
	PluginDirs []string
	// NetNSDir is where network namespaces are bind-mounted; empty means
	// DefaultNetNSDir.
	NetNSDir string
}

// withDefaults returns a copy of c with the empty optional fields filled.
func (c Config) withDefaults() Config {
	if len(c.PluginDirs) == 0 {
		c.PluginDirs = []string{DefaultPluginDir}
	}
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
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
	if _, err := parseSubnet(c.Subnet); err != nil {
		errs = append(errs, err)
	}
	for _, plugin := range requiredPlugins {
		if findPlugin(c.PluginDirs, plugin) == "" {
			errs = append(errs, fmt.Errorf("network config: CNI plugin %q not found in %v; install containernetworking-plugins (hack/setup-host.sh) or set PluginDirs", plugin, c.PluginDirs))
		}
	}
	return errors.Join(errs...)
}

// parseSubnet checks that s is an IPv4 network with room for a gateway and
// at least one container.
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

func findPlugin(dirs []string, name string) string {
	for _, dir := range dirs {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path
		}
	}
	return ""
}

// names are the host-wide names that belong to one node. They are derived
// from the node name so agents sharing a machine never touch each other's
// bridge, IPAM state, iptables chains or namespaces.
type names struct {
	bridge      string // "berth" + 8 hex: fits the 15-byte interface name limit
	network     string // the CNI network name, which CNI plugins hash into chain names
	netnsPrefix string
}

func namesFor(node string) names {
	sum := sha256.Sum256([]byte(node))
	h := hex.EncodeToString(sum[:4])
	return names{
		bridge:      "berth" + h,
		network:     "berth-" + h,
		netnsPrefix: "berth-" + h + "-",
	}
}

// conflist builds the CNI network configuration list of the node: a bridge
// with host-local IPAM, and, withPortmap, portmap so published ports reach
// the container.
// The loopback interface is brought up without a plugin (loopbackUp).
func conflist(n names, subnet netip.Prefix, ipamDir string, withPortmap bool) ([]byte, error) {
	type obj = map[string]any
	plugins := []obj{
		{
			"type":      "bridge",
			"bridge":    n.bridge,
			"isGateway": true,
			// Outbound masquerading is one rule for the whole subnet
			// (see CNI.ensureMasquerade), not a chain per container: the plugin's
			// per-container chains cost several serialized iptables
			// calls on every start and stop.
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": obj{
				"type":    "host-local",
				"dataDir": ipamDir,
				"ranges":  [][]obj{{{"subnet": subnet.String()}}},
				"routes":  []obj{{"dst": "0.0.0.0/0"}},
			},
		},
		{
			"type":         "portmap",
			"capabilities": obj{"portMappings": true},
			// snat lets connections to 127.0.0.1:<published> reach the
			// container: the plugin sets route_localnet on the bridge and
			// masquerades the loopback source address.
			"snat": true,
		},
	}
	if !withPortmap {
		// Containers that publish nothing skip the portmap plugin: one
		// process less on every start and stop.
		plugins = plugins[:1]
	}
	list := obj{"cniVersion": "1.0.0", "name": n.network, "plugins": plugins}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("encode CNI conflist: %w", err)
	}
	return b, nil
}

// idPattern is the container ID syntax CNI accepts.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// maxIDLen keeps netns file names well under the 255-byte limit.
const maxIDLen = 200

func validateID(id string) error {
	if len(id) > maxIDLen || !idPattern.MatchString(id) {
		return fmt.Errorf("network: container id %q is invalid: use 1-%d letters, digits, '_', '.' or '-', starting with a letter or digit", id, maxIDLen)
	}
	return nil
}
