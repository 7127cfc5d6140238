package agent

import (
	"context"
	"errors"
	"sync"

	"github.com/berthproject/berth/agent/network"
	"github.com/berthproject/berth/agent/runtime"
)

// lazyNetwork is the runtime's network once the control plane has said
// which subnet the node's containers use; until then attaching waits.
type lazyNetwork struct {
	name, dataDir string

	mu    sync.Mutex
	cni   *network.CNI
	err   error // why the network could not be set up
	ready chan struct{}
}

var _ runtime.Network = (*lazyNetwork)(nil)

func newLazyNetwork(name, dataDir string) *lazyNetwork {
	return &lazyNetwork{name: name, dataDir: dataDir, ready: make(chan struct{})}
}

// configure sets the network up with subnet; first says it was the first
// call.
func (n *lazyNetwork) configure(subnet string) (first bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cni != nil {
		return false, nil
	}
	cni, err := network.New(network.Config{Name: n.name, DataDir: n.dataDir, Subnet: subnet})
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
	n.cni = cni
	return true, nil
}

func (n *lazyNetwork) get(ctx context.Context) (*network.CNI, error) {
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
	return n.cni, nil
}

// Attach connects a container, once the network is configured.
func (n *lazyNetwork) Attach(ctx context.Context, spec runtime.ContainerSpec) (runtime.Attachment, error) {
	cni, err := n.get(ctx)
	if err != nil {
		return runtime.Attachment{}, err
	}
	ps := make([]network.Port, len(spec.Ports))
	for i, p := range spec.Ports {
		ps[i] = network.Port{Target: p.Target, Published: p.Published, Protocol: p.Protocol, HostIP: p.HostIP}
	}
	att, err := cni.Attach(ctx, spec.ID, ps)
	return runtime.Attachment{NetNSPath: att.NetNSPath, IP: att.IP}, err
}

// Detach disconnects a container.
func (n *lazyNetwork) Detach(ctx context.Context, id string) error {
	cni, err := n.get(ctx)
	if err != nil {
		return err
	}
	return cni.Detach(ctx, id)
}

// Close releases the network handle; attachments stay.
func (n *lazyNetwork) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cni == nil {
		return nil
	}
	return n.cni.Close()
}
