package agent

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/gossip"
)

// rejoinPeriod is how often a node alone in the gossip tries its seeds
// again: after a long partition the members have given up on each other.
const rejoinPeriod = 5 * time.Second

// nodeGossip is the node's member of the cluster's gossip. It starts on
// the first welcome, which brings the key and the timings; a restarted
// agent takes its former port again (kept in the data dir), so the others
// see the same member come back rather than a stranger with its name.
type nodeGossip struct {
	bind     string // --gossip-addr; empty: the address that reaches the server
	server   string
	portFile string
	log      *slog.Logger

	mu     sync.Mutex
	member *gossip.Member
	seeds  []string
	rejoin chan struct{}
}

func newNodeGossip(bind, server, dataDir string, log *slog.Logger) *nodeGossip {
	return &nodeGossip{
		bind: bind, server: server, portFile: filepath.Join(dataDir, "gossip-port"), log: log,
		rejoin: make(chan struct{}, 1),
	}
}

// welcome starts the member on the first call, and (re)joins the seeds
// on every call: a new session means the network is back.
func (g *nodeGossip) welcome(nodeID string, cfg *berthv1.GossipConfig) error {
	if cfg == nil || len(cfg.GetSeeds()) == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seeds = cfg.GetSeeds()
	if g.member == nil {
		m, err := g.start(nodeID, cfg)
		if err != nil {
			return err
		}
		g.member = m
	}
	select {
	case g.rejoin <- struct{}{}:
	default:
	}
	return nil
}

func (g *nodeGossip) start(nodeID string, cfg *berthv1.GossipConfig) (*gossip.Member, error) {
	gc := gossip.Config{
		Name:          nodeID,
		Key:           cfg.GetKey(),
		ProbeInterval: cfg.GetProbeInterval().AsDuration(),
		ProbeTimeout:  cfg.GetProbeTimeout().AsDuration(),
		SuspicionMult: int(cfg.GetSuspicionMult()),
		Log:           g.log,
	}
	if g.bind != "" {
		gc.Bind = g.bind
		return gossip.Start(gc)
	}
	host := localAddressFor(g.server)
	if b, err := os.ReadFile(g.portFile); err == nil {
		if port, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && port > 0 {
			gc.Bind = net.JoinHostPort(host, strconv.Itoa(port))
			m, err := gossip.Start(gc)
			if err == nil {
				return m, nil
			}
			g.log.Warn("former gossip port is taken; using another", "port", port, "err", err)
		}
	}
	gc.Bind = net.JoinHostPort(host, "0")
	m, err := gossip.Start(gc)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(m.Addr())
	if err := os.WriteFile(g.portFile, []byte(port+"\n"), 0o600); err != nil {
		g.log.Warn("saving the gossip port", "err", err)
	}
	return m, nil
}

// run joins the seeds when welcomed, and again whenever the node finds
// itself alone, until ctx ends.
func (g *nodeGossip) run(ctx context.Context) error {
	tick := time.NewTicker(rejoinPeriod)
	defer tick.Stop()
	for {
		welcomed := false
		select {
		case <-ctx.Done():
			return nil
		case <-g.rejoin:
			welcomed = true
		case <-tick.C:
		}
		g.mu.Lock()
		m, seeds := g.member, g.seeds
		g.mu.Unlock()
		if m == nil || (!welcomed && m.Members() > 1) {
			continue
		}
		if err := m.Join(seeds); err != nil {
			g.log.Warn("gossip", "err", err)
		}
	}
}

// leave says goodbye to the others: a node whose agent stops on purpose
// gets the grace period, not an immediate verdict.
func (g *nodeGossip) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.member != nil {
		g.member.Leave(time.Second)
		g.member = nil
	}
}
