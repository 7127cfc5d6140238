package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/nodecheck"
	"github.com/berthproject/berth/agent/worker"
	"github.com/berthproject/berth/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Config says how to run an agent.
type Config struct {
	// Server is the control plane's address, or several, comma-separated:
	// the agent follows them to the leader and learns the others.
	Server string
	// Token is the join token, needed the first time only.
	Token string
	// Name is the node's name, unique in the cluster; default the hostname.
	Name string
	// DataDir holds the node's credentials, logs and network state.
	DataDir string
	// Listen is where the node's own endpoint listens; default an
	// ephemeral port on the address that reaches the server.
	Listen string
	// GossipAddr is where the node's gossip member listens (host:port);
	// default the address that reaches the server, on the port it had
	// before or an ephemeral one.
	GossipAddr string
	Labels     map[string]string
	// MilliCPUs and MemoryBytes override the detected capacity.
	MilliCPUs, MemoryBytes int64
	// BuildkitAddr is a running buildkitd to build images with; empty
	// starts the agent's own on the first build (see package build).
	BuildkitAddr string
	// Runtime is "containerd" (default) or "fake" (scale tests: no
	// containers are run).
	Runtime string
	// FakeStartLatency and FakeFailureRate simulate a loaded node with the
	// fake runtime: each container start takes FakeStartLatency, and that
	// share of container starts fail (the container exits with code 1).
	FakeStartLatency  time.Duration
	FakeFailureRate   float64
	ContainerdAddress string
	// ContainerdNamespace keeps the node's containers and images apart in
	// containerd; default "berth".
	ContainerdNamespace string
	// ContentAddr is where the node serves its images to peers
	// (host:port); default the node endpoint's host, on the port it had
	// before or an ephemeral one.
	ContentAddr string
	// ContainerdRoot is containerd's root directory, whose disk image
	// cleanup watches; default /var/lib/containerd.
	ContainerdRoot string
	// ImageGCHighPercent and ImageGCLowPercent: when the disk holding
	// ContainerdRoot is fuller than the high mark, unused images are
	// removed until it is below the low one; defaults 85 and 80.
	ImageGCHighPercent, ImageGCLowPercent int
	// MaxConcurrentStarts and MaxConcurrentPulls bound the container
	// creates and starts, and the image pulls, the node runs at once;
	// more wait their turn. 0 picks the default (with the fake runtime:
	// no bound), less than 0 is no bound.
	MaxConcurrentStarts, MaxConcurrentPulls int
	// DiskFloor and InodeFloor are the free space and inodes the data
	// directory's file system needs for the node to be ready: a size
	// ("500MiB") or number, or a percentage ("5%"); defaults
	// nodecheck.DefaultDiskFloor and nodecheck.DefaultInodeFloor.
	DiskFloor, InodeFloor string
	// CheckPeriod is how often the node's conditions are checked; 0
	// means nodecheck.DefaultPeriod.
	CheckPeriod time.Duration
	// Metrics is where the agent registers its metrics (container start
	// and image pull times, the node's tasks by state); nil registers
	// none. The caller serves it.
	Metrics prometheus.Registerer
	// Health is where the agent adds its liveness and readiness checks
	// (the worker, the session, containerd); nil adds none. The caller
	// serves them at /healthz and /readyz.
	Health *metrics.Health
	Log    *slog.Logger
}

// withDefaults is c with every unset field at its default.
func (c Config) withDefaults() Config {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.ContainerdRoot == "" {
		c.ContainerdRoot = "/var/lib/containerd"
	}
	if c.ImageGCHighPercent == 0 {
		c.ImageGCHighPercent = image.DefaultGCHighPercent
	}
	if c.ImageGCLowPercent == 0 {
		c.ImageGCLowPercent = image.DefaultGCLowPercent
	}
	if c.DiskFloor == "" {
		c.DiskFloor = nodecheck.DefaultDiskFloor
	}
	if c.InodeFloor == "" {
		c.InodeFloor = nodecheck.DefaultInodeFloor
	}
	return c
}

// Validate reports what is wrong with c (after defaults), naming the
// flag that sets it. It looks at c only: nothing is read from disk or
// the network.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("agent: --data-dir is required"))
	}
	if len(c.servers()) == 0 {
		errs = append(errs, errors.New("agent: --join is required: the address of a Berth server (or several, comma-separated)"))
	}
	switch c.Runtime {
	case "", "containerd", "fake":
	default:
		errs = append(errs, fmt.Errorf("agent: unknown runtime %q: use containerd or fake", c.Runtime))
	}
	if h, l := c.ImageGCHighPercent, c.ImageGCLowPercent; h < 1 || h > 100 || l < 1 || l > h {
		errs = append(errs, fmt.Errorf("agent: image cleanup thresholds high %d%%, low %d%%: want 1 <= low <= high <= 100 (--image-gc-high-percent, --image-gc-low-percent)", h, l))
	}
	if _, err := nodecheck.ParseFloor(c.DiskFloor); err != nil {
		errs = append(errs, fmt.Errorf("agent: --disk-floor: %w", err))
	}
	if _, err := nodecheck.ParseFloor(c.InodeFloor); err != nil {
		errs = append(errs, fmt.Errorf("agent: --inode-floor: %w", err))
	}
	if c.FakeFailureRate < 0 || c.FakeFailureRate > 1 {
		errs = append(errs, fmt.Errorf("agent: fake failure rate %g is not a share between 0 and 1", c.FakeFailureRate))
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", c.Listen}, {"--gossip-addr", c.GossipAddr}, {"--content-addr", c.ContentAddr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("agent: %s %q is not a host:port address, like 192.0.2.10:7946", a.flag, a.addr))
		}
	}
	if c.MilliCPUs < 0 || c.MemoryBytes < 0 || c.CheckPeriod < 0 || c.FakeStartLatency < 0 {
		errs = append(errs, errors.New("agent: capacity, check period and start latency cannot be negative"))
	}
	return errors.Join(errs...)
}

// servers are the control plane addresses the agent was given.
func (c Config) servers() []string {
	var out []string
	for _, a := range strings.Split(c.Server, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// workLimits are the worker's bounds on starts and pulls, from c's.
func (c Config) workLimits() (starts, pulls int) {
	pick := func(n, def int) int {
		switch {
		case n < 0:
			return 0
		case n > 0:
			return n
		case c.Runtime == "fake":
			// Simulated starts cost nothing: the scale harness
			// measures the control plane, not this bound.
			return 0
		default:
			return def
		}
	}
	return pick(c.MaxConcurrentStarts, worker.DefaultMaxConcurrentStarts()), pick(c.MaxConcurrentPulls, worker.DefaultMaxConcurrentPulls)
}
