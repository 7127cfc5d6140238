package controlplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/berthproject/berth/controlplane/apiserver"
	"github.com/berthproject/berth/controlplane/audit"
	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/ratelimit"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Config says how to run a server.
type Config struct {
	// DataDir holds the embedded etcd's data and the server's files.
	DataDir string
	// Listen is where agents and clients connect (host:port).
	Listen string
	// HTTPListen is where the HTTP/JSON API is served over HTTPS
	// (host:port); empty serves none.
	HTTPListen string
	// Advertise is the address written into the admin config and join
	// commands; empty means the listen address.
	Advertise string
	// EtcdEndpoints selects an external etcd cluster instead of the
	// embedded member.
	EtcdEndpoints []string
	// EtcdTLS is how the server and the external etcd authenticate each
	// other; https:// endpoints need it unless the system trusts etcd's
	// certificates and etcd checks no client certificate.
	EtcdTLS etcd.ClientTLS
	// ConfigPath is where the admin client config is written; empty
	// writes none.
	ConfigPath string
	// KEKFile is the key-encryption key's file, which seals the cluster's
	// secrets in etcd; default <DataDir>/key-encryption-key. It is made
	// when the cluster is new; every server of a cluster needs a copy.
	KEKFile string
	// UnlockKey, when set, is the key-encryption key itself (base64 of 32
	// bytes), and no key file is read or written: the key is never on
	// the server's disk.
	UnlockKey string
	// ContainerRange is the address range nodes' container subnets (/24
	// each) come from.
	ContainerRange string
	// NetworkRange is the address range networks' subnets (/24 each,
	// unless a Compose file or berth network create gives one) come from;
	// it must not overlap ContainerRange. Default 10.128.0.0/12.
	NetworkRange string
	// HeartbeatPeriod is how often agents report in.
	HeartbeatPeriod time.Duration
	// NotReadyGrace is how long a node may fail a condition before its
	// tasks move elsewhere; 0 means orchestrator.DefaultNotReadyGrace.
	NotReadyGrace time.Duration
	// NodeDownGrace is how long a node may be out of contact before it is
	// declared down and its tasks are replaced elsewhere.
	NodeDownGrace time.Duration
	// MassLoss is the guard against mass eviction; zero values are the
	// defaults.
	MassLoss MassLossGuard
	// Gossip configures the server's member of the cluster's gossip.
	Gossip GossipConfig
	// LeaderLease is how long a leader that died keeps its leadership
	// before another server takes over; default DefaultLeaderLease on an
	// external etcd, and embeddedLeaderLease on the embedded one. etcd
	// raises it to its shortest lease (about 1.5 election timeouts).
	LeaderLease time.Duration
	// AuditLog, when set, is a file every call that changes something is
	// also written to, as one JSON object a line (appended, mode 0600);
	// "-" is standard error. Each server writes the calls it served.
	AuditLog string
	// AuditRetention is how long audit records are kept; zero is
	// audit.DefaultRetention, and less than audit.MinRetention is refused.
	AuditRetention time.Duration
	// CertLifetime is how long the certificates the CA issues last;
	// default ca.DefaultLeafLifetime. Tests shorten it to see renewals.
	CertLifetime time.Duration
	// Metrics is where the server registers its metrics (tasks, nodes,
	// placements, etcd transactions, gRPC calls); nil registers none. The
	// caller serves it.
	Metrics prometheus.Registerer
	// Health is where the server adds its liveness and readiness checks
	// (etcd, the store cache, the leader); nil adds none. The caller
	// serves them at /healthz and /readyz.
	Health *metrics.Health
	// RateLimits limits joins per source address and calls per user or
	// token; zero values are the defaults.
	RateLimits ratelimit.Config
	// Snapshots are the leader's periodic snapshots; zero writes none.
	Snapshots SnapshotConfig
	Log       *slog.Logger
}

// GossipConfig configures gossip among servers and agents. The servers
// hand the timings to the agents, so one cluster uses one set.
type GossipConfig struct {
	// Addr is the host:port gossip listens on (UDP and TCP); default an
	// ephemeral port on the advertised host. Agents learn it when they
	// connect.
	Addr string
	// ProbeInterval, ProbeTimeout and SuspicionMult tune failure
	// detection; zero values take the gossip package's defaults.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
}

// MassLossGuard says when so many nodes losing contact at once is taken
// for a failure of the control plane's own network (see nodehealth.Guard).
type MassLossGuard struct {
	// Share of the nodes; 0 is nodehealth.DefaultGuardShare, negative
	// turns the guard off.
	Share float64
	// MinNodes is the fewest nodes it applies to; 0 is
	// nodehealth.DefaultGuardMinNodes.
	MinNodes int
}

// Flagged is g as command-line flags give it, where a share of 0 turns
// the guard off.
func (g MassLossGuard) Flagged() MassLossGuard {
	if g.Share == 0 {
		g.Share = -1
	}
	return g
}

// addressRanges reads the container and network ranges, which must be
// IPv4 and apart: a network's subnet inside the container range would
// meet a node's own container subnet.
func addressRanges(container, network string) (netip.Prefix, netip.Prefix, error) {
	c, err := netip.ParsePrefix(container)
	if err != nil || !c.Addr().Is4() {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("container range %q is not an IPv4 range, like 10.210.0.0/16", container)
	}
	n, err := netip.ParsePrefix(network)
	if err != nil || !n.Addr().Is4() || n.Bits() > 24 {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("network range %q is not an IPv4 range of at least a /24, like 10.128.0.0/12", network)
	}
	c, n = c.Masked(), n.Masked()
	if c.Overlaps(n) {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("network range %s overlaps container range %s; give ranges apart with --network-range and --container-range", n, c)
	}
	return c, n, nil
}

// Defaults of a server's configuration.
const (
	DefaultListen         = "127.0.0.1:4242"
	DefaultContainerRange = "10.210.0.0/16"
)

// withDefaults is c with every unset field at its default. The leader
// lease's default depends on where etcd runs: the embedded member, or
// an external cluster.
func (c Config) withDefaults() Config {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ContainerRange == "" {
		c.ContainerRange = DefaultContainerRange
	}
	if c.NetworkRange == "" {
		c.NetworkRange = apiserver.DefaultNetworkRange.String()
	}
	if c.AuditRetention == 0 {
		c.AuditRetention = audit.DefaultRetention
	}
	if c.LeaderLease <= 0 {
		c.LeaderLease = DefaultLeaderLease
		if c.embeddedEtcd() {
			c.LeaderLease = embeddedLeaderLease
		}
	}
	return c
}

// embeddedEtcd says whether the server runs its own etcd member.
func (c Config) embeddedEtcd() bool { return len(c.EtcdEndpoints) == 0 }

// Validate reports what is wrong with c (after defaults), naming the
// flag that sets it. It looks at c only: nothing is read from disk or
// the network.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("no data directory: give one with --data-dir"))
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", c.Listen}, {"--http-listen", c.HTTPListen}, {"--advertise", c.Advertise}, {"--gossip-addr", c.Gossip.Addr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a host:port address, like 127.0.0.1:4242", a.flag, a.addr))
		}
	}
	if _, _, err := addressRanges(c.ContainerRange, c.NetworkRange); err != nil {
		errs = append(errs, err)
	}
	if err := audit.CheckRetention(c.AuditRetention); err != nil {
		errs = append(errs, err)
	}
	if c.embeddedEtcd() && !c.EtcdTLS.IsZero() {
		errs = append(errs, errors.New("--etcd-cacert, --etcd-cert and --etcd-key apply to an external etcd: give its endpoints with --etcd-endpoints, or drop them to use the embedded etcd"))
	}
	if c.UnlockKey != "" && c.KEKFile != "" {
		errs = append(errs, errors.New("--unlock-key and --kek-file both give the key-encryption key: keep one"))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--heartbeat-period", c.HeartbeatPeriod}, {"--not-ready-grace", c.NotReadyGrace}, {"--node-down-grace", c.NodeDownGrace}, {"--cert-lifetime", c.CertLifetime}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative: give a positive duration, or 0 for the default", d.flag, d.v))
		}
	}
	if c.Snapshots.Interval < 0 || c.Snapshots.Keep < 0 {
		errs = append(errs, fmt.Errorf("--snapshot-interval and --snapshot-keep cannot be negative (got %s and %d)", c.Snapshots.Interval, c.Snapshots.Keep))
	}
	if c.Snapshots.PassphraseFile != "" && c.Snapshots.Interval == 0 {
		errs = append(errs, errors.New("--snapshot-passphrase-file seals the key into periodic snapshots: give --snapshot-interval too, or drop it"))
	}
	return errors.Join(errs...)
}

// ranges are c's container and network ranges, parsed; c is valid.
func (c Config) ranges() (container, network netip.Prefix) {
	container, network, _ = addressRanges(c.ContainerRange, c.NetworkRange)
	return container, network
}
