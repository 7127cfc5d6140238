// Package gossip runs Berth's membership gossip (SWIM, through memberlist)
// among servers and agents, tuned for a LAN: members probe each other
// directly and through peers, so a dead node is known within about a
// second, and a node one member cannot reach but others can stays alive.
// Servers and agents both use it: servers to judge nodes, agents to be
// judged.
package gossip

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Default timings: a dead member is suspected after a failed direct and
// indirect probe (one probe interval) and declared dead after the
// suspicion timeout, SuspicionMult probe intervals: about 0.6-0.8 s in all
// on a small cluster, growing with the logarithm of its size.
const (
	DefaultProbeInterval = 200 * time.Millisecond
	DefaultProbeTimeout  = 100 * time.Millisecond
	DefaultSuspicionMult = 2
)

// Config says how to run a member.
type Config struct {
	// Name identifies the member: a node id for agents.
	Name string
	// Bind is the host:port to listen on (UDP and TCP); port 0 picks a
	// free one.
	Bind string
	// Advertise is the host:port others reach this member at; default
	// Bind (or, for an unspecified host, an address of this machine).
	Advertise string
	// Key encrypts gossip: 16, 24 or 32 bytes.
	Key []byte
	// ProbeInterval, ProbeTimeout and SuspicionMult tune failure
	// detection; zero values take the defaults above.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
	Log           *slog.Logger
}

// State is what gossip knows of one member.
type State struct {
	// Alive is false once the member was declared dead or left.
	Alive bool
	// Left is set when the member said goodbye (a graceful stop), as
	// opposed to failing probes.
	Left bool
	// Since is when the member entered this state.
	Since time.Time
	// Addr is the member's gossip address.
	Addr string
}

// Member is this process's membership in the gossip.
type Member struct {
	ml  *memberlist.Memberlist
	log *slog.Logger

	mu      sync.Mutex
	states  map[string]State
	leaving map[string]bool
	meta    []byte
	changed chan struct{}
}

// metaLeaving is the metadata a member announces just before it leaves:
// memberlist reports a departure and a failure alike, so the others learn
// from it which one they see.
var metaLeaving = []byte("leaving")

// Start creates the member and starts gossiping; Join connects it to the
// others.
func Start(cfg Config) (*Member, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.Bind, err)
	}
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = host, port, port
	if cfg.Advertise != "" {
		ahost, aport, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise address %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ahost, aport
	} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr = host
	}
	mc.SecretKey = cfg.Key
	mc.ProbeInterval = cmp.Or(cfg.ProbeInterval, DefaultProbeInterval)
	mc.ProbeTimeout = cmp.Or(cfg.ProbeTimeout, DefaultProbeTimeout)
	mc.SuspicionMult = cmp.Or(cfg.SuspicionMult, DefaultSuspicionMult)
	// Refutations and deaths must spread faster than a suspicion times
	// out; the defaults gossip every 200 ms.
	mc.GossipInterval = mc.ProbeInterval / 2
	mc.SuspicionMaxTimeoutMult = 3
	mc.PushPullInterval = 15 * time.Second
	mc.TCPTimeout = 2 * time.Second
	// Messages are small and the network a LAN: compressing each one
	// cost a member an eighth of its CPU in a thousand-node cluster.
	mc.EnableCompression = false
	// Bursts (a hundred nodes joining at once) must not overflow the
	// queue of messages waiting to be handled: a dropped message is a
	// missed ack or refutation, and a live member taken for dead.
	mc.HandoffQueueDepth = 8192
	// A member that restarts on a new address (its old one lost) may
	// take its name back as soon as the old one is dead.
	mc.DeadNodeReclaimTime = time.Second
	mc.Logger = log.New(&logWriter{log: cfg.Log}, "", 0)

	m := &Member{log: cfg.Log, states: map[string]State{}, leaving: map[string]bool{}, changed: make(chan struct{}, 1)}
	mc.Events = m
	mc.Delegate = m
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting gossip on %s: %w", cfg.Bind, err)
	}
	m.ml = ml
	return m, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// Join contacts the seeds (host:port) and merges their view of the
// members; it succeeds when at least one answered.
func (m *Member) Join(seeds []string) error {
	if len(seeds) == 0 {
		return nil
	}
	if _, err := m.ml.Join(seeds); err != nil {
		return fmt.Errorf("joining gossip through %s: %w", strings.Join(seeds, ", "), err)
	}
	return nil
}

// Addr is the host:port other members reach this one at.
func (m *Member) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Members is how many members are alive, this one included.
func (m *Member) Members() int { return m.ml.NumMembers() }

// State is what gossip knows of the member called name; ok is false for a
// member never seen.
func (m *Member) State(name string) (s State, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok = m.states[name]
	return s, ok
}

// Changed is signalled (without blocking, coalesced) when a member joins,
// dies or leaves.
func (m *Member) Changed() <-chan struct{} { return m.changed }

// Leave tells the others this member is going away on purpose, then stops.
func (m *Member) Leave(timeout time.Duration) {
	m.mu.Lock()
	m.meta = metaLeaving
	m.mu.Unlock()
	if err := m.ml.UpdateNode(timeout); err != nil {
		m.log.Debug("announcing departure", "err", err)
	}
	if err := m.ml.Leave(timeout); err != nil {
		m.log.Debug("leaving gossip", "err", err)
	}
	m.Close()
}

// Close stops gossiping without saying goodbye: to the others it looks
// like a failure.
func (m *Member) Close() {
	if err := m.ml.Shutdown(); err != nil {
		m.log.Debug("stopping gossip", "err", err)
	}
}

// NotifyJoin implements memberlist.EventDelegate.
func (m *Member) NotifyJoin(n *memberlist.Node) { m.set(n, true) }

// NotifyLeave implements memberlist.EventDelegate: the member died or left.
func (m *Member) NotifyLeave(n *memberlist.Node) { m.set(n, false) }

// NotifyUpdate implements memberlist.EventDelegate.
func (m *Member) NotifyUpdate(n *memberlist.Node) { m.set(n, true) }

func (m *Member) set(n *memberlist.Node, alive bool) {
	m.mu.Lock()
	if alive {
		m.leaving[n.Name] = bytes.Equal(n.Meta, metaLeaving)
	}
	s := State{
		Alive: alive,
		Left:  !alive && m.leaving[n.Name],
		Since: time.Now(),
		Addr:  n.Address(),
	}
	if prev, ok := m.states[n.Name]; ok && prev.Alive == s.Alive && prev.Left == s.Left {
		s.Since = prev.Since
	}
	m.states[n.Name] = s
	m.mu.Unlock()
	switch {
	case alive:
		m.log.Debug("gossip member alive", "member", n.Name, "addr", s.Addr)
	case s.Left:
		m.log.Info("gossip member left", "member", n.Name, "addr", s.Addr)
	default:
		m.log.Info("gossip member failed", "member", n.Name, "addr", s.Addr)
	}
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// NodeMeta implements memberlist.Delegate.
func (m *Member) NodeMeta(limit int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta
}

// NotifyMsg implements memberlist.Delegate; members send no messages.
func (m *Member) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate; members broadcast nothing.
func (m *Member) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; there is no state to share.
func (m *Member) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (m *Member) MergeRemoteState(buf []byte, join bool) {}

// logWriter turns memberlist's "[LEVEL] memberlist: ..." lines into slog
// records of the same level.
type logWriter struct{ log *slog.Logger }

var _ io.Writer = (*logWriter)(nil)

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[INFO]"):
		level = slog.LevelInfo
	}
	if i := strings.Index(line, "memberlist: "); i >= 0 {
		line = line[i+len("memberlist: "):]
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
