package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/berthproject/berth/agent/network"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// lazyNetwork is the runtime's network once the control plane has said
// which subnet the node has; until then attaching waits.
type lazyNetwork struct {
	name, dataDir, nodeID string
	// address is the node endpoint's address, whose IP carries the
	// node's overlay traffic.
	address string

	// programming measures how fast the node's network follows the
	// control plane's changes.
	programming prometheus.Histogram

	mu sync.Mutex
	// subnet is the node's container subnet, from the first welcome;
	// the network check judges it.
	subnet netip.Prefix
	node   *network.Node
	err    error // why the network could not be set up
	ready  chan struct{}
}

var (
	_ runtime.Network        = (*lazyNetwork)(nil)
	_ runtime.NetworkTraffic = (*lazyNetwork)(nil)
)

func newLazyNetwork(name, dataDir, nodeID, address string) *lazyNetwork {
	return &lazyNetwork{
		name: name, dataDir: dataDir, nodeID: nodeID, address: address, ready: make(chan struct{}),
		programming: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_network_programming_seconds",
			Help: "Time from the control plane seeing a task's change of place or readiness to this node's names, routes and rules following it.",
			// From a millisecond: the goal is a p99 of 250 ms.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
}

// configure sets the network up from the session's welcome; first says it
// was the first call.
func (n *lazyNetwork) configure(w *berthv1.SessionWelcome) (first bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node != nil {
		return false, nil
	}
	n.subnet = subnetOf(w)
	host, _, err := net.SplitHostPort(n.address)
	if err != nil {
		host = n.address
	}
	node, err := network.New(network.Config{
		Name: n.name, NodeID: n.nodeID, DataDir: n.dataDir,
		Subnet: w.GetSubnet(), ContainerRange: w.GetContainerRange(), Address: host,
		Programmed: func(d time.Duration) { n.programming.Observe(d.Seconds()) },
	})
	if err != nil {
		// Containers fail with the reason instead of waiting forever.
		if n.err == nil {
			n.err = err
			close(n.ready)
		}
		return false, err
	}
	if n.err != nil {
		n.err = nil
	} else {
		close(n.ready)
	}
	n.node = node
	return true, nil
}

func (n *lazyNetwork) get(ctx context.Context) (*network.Node, error) {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return nil, errors.New("the container network is not configured yet (no session with the control plane)")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return nil, n.err
	}
	return n.node, nil
}

// setMap hands a network map message to the node's network; one that
// arrives before the network is set up is dropped, since the session's
// first map after the welcome is full.
func (n *lazyNetwork) setMap(m *berthv1.NetworkMap) {
	n.mu.Lock()
	node := n.node
	n.mu.Unlock()
	if node != nil {
		node.SetMap(m)
	}
}

// Attach connects a container, once the network is configured.
func (n *lazyNetwork) Attach(ctx context.Context, spec runtime.ContainerSpec) (runtime.Attachment, error) {
	node, err := n.get(ctx)
	if err != nil {
		return runtime.Attachment{}, err
	}
	as := network.AttachSpec{
		ID:       spec.ID,
		Hostname: runtime.Hostname(spec),
		Search:   spec.DNS.Search,
		Servers:  spec.DNS.Servers,
		Options:  spec.DNS.Options,
	}
	for _, p := range spec.Ports {
		as.Ports = append(as.Ports, network.Port{Target: p.Target, Published: p.Published, Protocol: p.Protocol, HostIP: p.HostIP})
	}
	for _, h := range spec.DNS.ExtraHosts {
		as.ExtraHosts = append(as.ExtraHosts, &berthv1.ExtraHost{Hostname: h.Hostname, Address: h.Address})
	}
	for _, i := range spec.Networks {
		addr, err := netip.ParsePrefix(i.Address)
		if err != nil {
			return runtime.Attachment{}, fmt.Errorf("network %s: address %q: %w", i.Network, i.Address, err)
		}
		as.Interfaces = append(as.Interfaces, network.Interface{NetworkID: i.NetworkID, Address: addr, Internal: i.Internal})
	}
	att, err := node.Attach(ctx, as)
	return runtime.Attachment{NetNSPath: att.NetNSPath, IP: att.IP, Files: att.Files}, err
}

// Detach disconnects a container.
func (n *lazyNetwork) Detach(ctx context.Context, id string) error {
	node, err := n.get(ctx)
	if err != nil {
		return err
	}
	return node.Detach(ctx, id)
}

// Traffic reads container id's network counters, once the network is
// configured.
func (n *lazyNetwork) Traffic(id string) (rx, tx uint64, err error) {
	n.mu.Lock()
	node := n.node
	n.mu.Unlock()
	if node == nil {
		return 0, 0, errors.New("the container network is not configured yet")
	}
	t, err := node.Traffic(id)
	return t.RxBytes, t.TxBytes, err
}

// Attached lists the ids that hold anything of the node's network; none
// while the network is not set up (the sweep must not wait for it).
func (n *lazyNetwork) Attached() ([]string, error) {
	n.mu.Lock()
	node := n.node
	n.mu.Unlock()
	if node == nil {
		return nil, nil
	}
	return node.Attached()
}

// Close releases the network handle; attachments stay.
func (n *lazyNetwork) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node == nil {
		return nil
	}
	return n.node.Close()
}
