// Package network connects a node's containers with the cluster: each
// container gets its own network namespace with one interface per network
// it joins, routed through the node; a VXLAN overlay carries traffic to
// the containers of other nodes; nftables rules give services their
// virtual IPs, publish ports, keep networks apart and masquerade what
// leaves the cluster; and each container has a DNS server of its own that
// answers the cluster's names. What to program comes from the control
// plane's network map (package netmap).
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/berthproject/berth/agent/network/nspath"
	"github.com/berthproject/berth/internal/keylock"

	"github.com/berthproject/berth/agent/network/dns"
	"github.com/berthproject/berth/agent/network/netmap"
	"github.com/berthproject/berth/agent/network/rules"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("network: closed")

// AttachSpec is how one container joins the networks.
type AttachSpec struct {
	ID string
	// Interfaces are the container's places on its networks, in order.
	Interfaces []Interface
	// Ports are published on this node only (host mode).
	Ports []Port
	// Hostname is the container's host name; empty means its id, cut to
	// 63 bytes.
	Hostname string
	// Search, Servers and Options go into resolv.conf; Servers replace
	// the node's resolvers for the names the cluster does not know.
	Search, Servers, Options []string
	ExtraHosts               []*berthv1.ExtraHost
}

// Attachment is a container's place on the network.
type Attachment struct {
	// NetNSPath is the bind-mounted network namespace to put in the
	// container's OCI spec.
	NetNSPath string
	// IP is the container's address on its first network; empty with
	// none.
	IP string
	// Files are the generated resolver files by their path in the
	// container.
	Files map[string]string
}

// Node is the container network of one node. It is safe for concurrent
// use; calls for the same container id are serialized.
type Node struct {
	cfg       Config
	nodeRange netip.Prefix
	records   records
	files     string // DATA_DIR/network/files
	overlay   *Overlay
	rules     *rules.Table
	// netns is the network namespace New ran in, open for the rules:
	// they are written from whichever goroutine programs them (the
	// background loop too), and must land in the node's namespace, as
	// the overlay's netlink handle does.
	netns  int
	dns    *dns.Server
	netmap *netmap.Map
	log    *slog.Logger

	locks keylock.Locks

	// mu guards local; program holds it so that what it reads is one
	// consistent view.
	mu    sync.Mutex
	local map[string]rules.Local
	// pending are the task changes SetMap folded in since the last
	// programming, to measure how long they take.
	pendMu  sync.Mutex
	pending []changed
	// progMu serializes programming the overlay and the rules, and
	// guards applied.
	progMu sync.Mutex
	// applied is the rules' model as last applied, nil before the first
	// success: what endpoints left is measured against it.
	applied *rules.Model

	// kick wakes the loop that programs the latest map.
	kick chan struct{}
	done chan struct{}
	stop context.CancelFunc

	closeMu sync.RWMutex // guards closed against calls in flight
	closed  bool
}

// New sets up the network of the node cfg describes: the overlay device,
// the rule table and the DNS server, in the calling thread's network
// namespace (the agent's own). Attach and Detach make the node's side of
// each container's links in the calling thread's namespace too, so they
// must be called from the same one. Containers attached before an agent
// restart are adopted: their DNS servers answer again.
func New(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	subnet, _ := parseSubnet(cfg.Subnet)                  // checked by Validate
	nodeRange, _ := netip.ParsePrefix(cfg.ContainerRange) // checked by Validate
	addr, _ := netip.ParseAddr(cfg.Address)               // checked by Validate
	if err := hostSetup(); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("network: open the node's network namespace: %w", err)
	}
	ov, err := NewOverlay(OverlayConfig{Node: cfg.Name, Subnet: subnet, Address: addr, Port: cfg.VXLANPort})
	if err != nil {
		unix.Close(self)
		return nil, err
	}
	root := filepath.Join(cfg.DataDir, "network")
	ctx, stop := context.WithCancel(context.Background())
	n := &Node{
		cfg:       cfg,
		nodeRange: nodeRange.Masked(),
		records:   records{dir: filepath.Join(root, "attachments")},
		files:     filepath.Join(root, "files"),
		overlay:   ov,
		rules:     rules.New(cfg.Name, rules.WithNetNS(self)),
		netns:     self,
		dns:       dns.NewServer(dns.Config{Resolvers: dns.NodeResolvers(cfg.ResolvConf), Log: slog.Default().With("component", "dns", "node", cfg.Name)}),
		netmap:    netmap.New(),
		log:       slog.Default().With("component", "network", "node", cfg.Name),
		local:     map[string]rules.Local{},
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		stop:      stop,
	}
	if err := n.adopt(); err != nil {
		stop()
		n.dns.Shutdown()
		ov.Close()
		unix.Close(self)
		return nil, err
	}
	// What an earlier run of this node left outside its records is
	// cleaned, not left to pile up or to be mistaken for another's.
	if err := n.sweepStale(); err != nil {
		n.log.Warn("cleaning what an earlier run of this node left", "err", err)
	}
	if err := n.program(); err != nil {
		n.log.Warn("programming the node's network", "err", err)
	}
	go n.loop(ctx)
	return n, nil
}

// adopt takes over the attachments an earlier agent made: their rules
// come back with the next programming, their DNS servers now.
func (n *Node) adopt() error {
	ids, err := n.records.ids()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	for _, id := range ids {
		rec, ok, err := n.records.get(id)
		if err != nil || !ok || !rec.Done {
			continue // an attach that did not finish: Detach cleans it up
		}
		if alive, _ := nspath.IsNetNS(rec.NetNSPath); !alive {
			continue
		}
		n.local[id] = rec.local()
		if err := n.dns.Listen(id, rec.NetNSPath, rec.Servers); err != nil {
			n.log.Warn("DNS server of an adopted container", "id", id, "err", err)
		}
	}
	return nil
}

// SetMap folds a network map message in; the overlay, the rules and the
// DNS answers follow it at once, in the background.
func (n *Node) SetMap(m *berthv1.NetworkMap) {
	n.netmap.Apply(m)
	// Noted after the map has them, so that sync, which takes them before
	// it reads the map, never counts one it has not programmed.
	n.pendMu.Lock()
	for _, t := range m.GetTasks() {
		if at := t.GetChangedAt(); at != nil {
			n.pending = append(n.pending, changed{task: t.GetId(), at: at.AsTime()})
		}
	}
	if at := m.GetTasksRemovedAt(); at != nil {
		for _, id := range m.GetRemovedTasks() {
			n.pending = append(n.pending, changed{task: id, at: at.AsTime()})
		}
	}
	n.pendMu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Snapshot returns the latest network map.
func (n *Node) Snapshot() *netmap.Snapshot { return n.netmap.Current() }

func (n *Node) loop(ctx context.Context) {
	defer close(n.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		}
		if err := n.program(); err != nil {
			n.log.Warn("programming the node's network", "err", err)
		}
	}
}

// program makes the DNS answers, the overlay and the rules follow the
// latest map and the attached containers.
func (n *Node) program() error {
	return errors.Join(n.sync())
}

// programPorts is program for Attach and Detach, whose containers'
// published ports must hold when they return. The ports depend on the
// rules alone: an overlay problem (a peer the map gives badly) is logged,
// not made the container's failure.
func (n *Node) programPorts() error {
	errOverlay, errRules := n.sync()
	if errOverlay != nil {
		n.log.Warn("programming the node's overlay", "err", errOverlay)
	}
	return errRules
}

// sync is program, with the overlay's error and the rules' apart.
func (n *Node) sync() (errOverlay, errRules error) {
	n.progMu.Lock()
	defer n.progMu.Unlock()
	n.pendMu.Lock()
	changes := n.pending
	n.pending = nil
	n.pendMu.Unlock()
	snap := n.netmap.Current()
	n.dns.SetIndex(dns.NewIndex(snap))
	peers, routes := PeersAndRoutes(snap, n.cfg.NodeID)
	errOverlay = n.overlay.Sync(peers, routes)
	n.mu.Lock()
	local := make([]rules.Local, 0, len(n.local))
	for _, id := range slices.Sorted(maps.Keys(n.local)) {
		local = append(local, n.local[id])
	}
	n.mu.Unlock()
	model := rules.FromMap(snap, n.nodeRange, local)
	errRules = n.rules.Apply(model)
	if errRules == nil {
		// Only once the rules lead elsewhere: a packet between deleting
		// and applying would make the entry again.
		if n.applied != nil {
			n.deleteStaleUDP(*n.applied, model)
		}
		n.applied = &model
		n.programmed(changes)
	}
	return errOverlay, errRules
}

// changed is a task record the control plane changed at a time it gave.
type changed struct {
	task string
	at   time.Time
}

// programmed reports how long the changes took, from the control plane
// seeing them to this node's names, routes and rules following them.
func (n *Node) programmed(changes []changed) {
	now := time.Now()
	for _, c := range changes {
		d := now.Sub(c.at)
		if n.cfg.Programmed != nil {
			n.cfg.Programmed(d)
		}
		n.log.Debug("network change programmed", "task", c.task, "latency", d)
	}
}

func (n *Node) netnsPath(id string) string {
	return filepath.Join(n.cfg.NetNSDir, netnsPrefix(n.cfg.Name)+id)
}

// Attach creates the network namespace of container spec.ID, connects it
// to its networks, publishes its host ports, writes its resolver files and
// starts its DNS server. Attaching an id that is attached already returns
// the attachment; with other ports it is an error, since ports cannot
// change under a running container.
func (n *Node) Attach(ctx context.Context, spec AttachSpec) (Attachment, error) {
	if err := validateID(spec.ID); err != nil {
		return Attachment{}, err
	}
	ports, err := normalizePorts(spec.Ports)
	if err != nil {
		return Attachment{}, err
	}
	n.closeMu.RLock()
	defer n.closeMu.RUnlock()
	if n.closed {
		return Attachment{}, ErrClosed
	}
	id := spec.ID
	defer n.locks.Lock(id)()

	if rec, ok, err := n.records.get(id); err != nil {
		return Attachment{}, err
	} else if ok {
		alive, err := nspath.IsNetNS(rec.NetNSPath)
		if err != nil {
			return Attachment{}, err
		}
		if rec.Done && alive {
			if !slices.Equal(rec.Ports, ports) {
				return Attachment{}, fmt.Errorf("network: container %s is already attached with ports %v, not %v; detach it first", id, rec.Ports, ports)
			}
			return n.attachment(rec), n.dns.Listen(id, rec.NetNSPath, rec.Servers)
		}
		// An attach that did not finish, or whose namespace is gone
		// (a reboot): start afresh.
		if err := n.detach(ctx, id); err != nil {
			return Attachment{}, err
		}
	}

	rec := record{ID: id, NetNSPath: n.netnsPath(id), Ports: ports, Servers: spec.Servers}
	undo := func(err error) (Attachment, error) {
		err = fmt.Errorf("network: attach %s: %w", id, err)
		return Attachment{}, errors.Join(err, n.detach(context.WithoutCancel(ctx), id))
	}
	// A namespace without a record is left from a crash before the record
	// was written; nothing else refers to it.
	if err := nspath.Remove(rec.NetNSPath); err != nil {
		return Attachment{}, fmt.Errorf("network: attach %s: %w", id, err)
	}
	if err := nspath.Create(rec.NetNSPath); err != nil {
		return Attachment{}, fmt.Errorf("network: attach %s: %w", id, err)
	}
	if err := nspath.LoopbackUp(rec.NetNSPath); err != nil {
		err = fmt.Errorf("network: attach %s: %w", id, err)
		return Attachment{}, errors.Join(err, nspath.Remove(rec.NetNSPath))
	}
	// The record goes down before the links are made, so that a crash at
	// any later point leaves enough for Detach to undo.
	for i, ifc := range spec.Interfaces {
		// The names the links will have, so that a crash while making
		// them leaves what Detach needs to delete them.
		rec.Links = append(rec.Links, Link{Host: hostVethName(id, i), Container: containerIfName(i), Address: ifc.Address, NetworkID: ifc.NetworkID})
	}
	if err := n.records.put(rec); err != nil {
		err = fmt.Errorf("network: attach %s: %w", id, err)
		return Attachment{}, errors.Join(err, nspath.Remove(rec.NetNSPath))
	}
	links, err := attachLinks(rec.NetNSPath, id, spec.Interfaces, n.overlay.MTU())
	if err != nil {
		return undo(err)
	}
	rec.Links = links
	if err := n.writeFiles(spec, rec); err != nil {
		return undo(err)
	}
	if err := n.dns.Listen(id, rec.NetNSPath, spec.Servers); err != nil {
		return undo(err)
	}
	rec.Done = true
	if err := n.records.put(rec); err != nil {
		return undo(err)
	}
	n.mu.Lock()
	n.local[id] = rec.local()
	n.mu.Unlock()
	if len(ports) > 0 {
		// Published ports answer once Attach returns: program now
		// rather than in the background.
		if err := n.programPorts(); err != nil {
			return undo(err)
		}
	}
	a := n.attachment(rec)
	n.log.Debug("attached", "id", id, "ip", a.IP, "netns", rec.NetNSPath, "ports", len(ports))
	return a, nil
}

func (n *Node) attachment(rec record) Attachment {
	a := Attachment{NetNSPath: rec.NetNSPath, Files: n.filePaths(rec.ID)}
	if len(rec.Links) > 0 {
		a.IP = rec.Links[0].Address.Addr().String()
	}
	return a
}

// Detach stops the DNS server of container id, deletes its links, the
// rules of its published ports, its files and its network namespace.
// Detaching an id that is not attached, or whose namespace is already
// gone, succeeds.
func (n *Node) Detach(ctx context.Context, id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	n.closeMu.RLock()
	defer n.closeMu.RUnlock()
	if n.closed {
		return ErrClosed
	}
	defer n.locks.Lock(id)()
	return n.detach(ctx, id)
}

// detach is Detach with the id lock held.
func (n *Node) detach(ctx context.Context, id string) error {
	if err := n.dns.Close(id); err != nil {
		n.log.Warn("stopping a container's DNS server", "id", id, "err", err)
	}
	n.mu.Lock()
	_, had := n.local[id]
	delete(n.local, id)
	n.mu.Unlock()
	rec, ok, err := n.records.get(id)
	if err != nil {
		return err
	}
	var errs []error
	if had && ok && len(rec.Ports) > 0 {
		errs = append(errs, n.programPorts())
	} else if had {
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	if ok {
		errs = append(errs, detachLinks(rec.Links))
	}
	path := n.netnsPath(id)
	if ok {
		path = rec.NetNSPath
	}
	errs = append(errs, nspath.Remove(path))
	errs = append(errs, os.RemoveAll(filepath.Join(n.files, id)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("network: detach %s: %w", id, err)
	}
	if err := n.records.remove(id); err != nil {
		return fmt.Errorf("network: detach %s: %w", id, err)
	}
	n.log.Debug("detached", "id", id)
	return nil
}

// Attachments lists the ids of the containers that have an attachment
// record, finished or not; an agent compares it with its containers after
// a restart and detaches the rest.
func (n *Node) Attachments() ([]string, error) {
	ids, err := n.records.ids()
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// Destroy detaches every container and deletes the overlay and the rules:
// for a node leaving the cluster, and for tests. It closes n first, so
// that no map arriving meanwhile writes the rules or the overlay again;
// later calls fail with ErrClosed.
func (n *Node) Destroy(ctx context.Context) error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return ErrClosed
	}
	// With the write lock held no other call is in flight, and none
	// starts: the containers need no id locks.
	n.closed = true
	n.stop()
	<-n.done
	ids, err := n.Attachments()
	errs := []error{err}
	for _, id := range ids {
		errs = append(errs, n.detach(ctx, id))
	}
	errs = append(errs, n.rules.Destroy(), n.overlay.Destroy())
	n.dns.Shutdown()
	unix.Close(n.netns)
	return errors.Join(errs...)
}

// Close stops the DNS servers and the programming loop and releases the
// node's netlink sockets. Links, rules and the overlay stay in place, since
// containers keep running across an agent restart; later calls fail with
// ErrClosed.
func (n *Node) Close() error {
	n.closeMu.Lock()
	if n.closed {
		n.closeMu.Unlock()
		return nil
	}
	n.closed = true
	n.closeMu.Unlock()
	n.stop()
	<-n.done
	n.dns.Shutdown()
	err := n.overlay.Close()
	unix.Close(n.netns)
	return err
}

// Remove deletes whatever the network of node name left on this machine:
// its containers' links, namespaces, records and files, its overlay device
// and its rule table, in the calling thread's network namespace. It needs
// no running network: for a node that leaves for good, and for tests
// cleaning up after an agent.
func Remove(name, dataDir, netnsDir string) error {
	if netnsDir == "" {
		netnsDir = DefaultNetNSDir
	}
	root := filepath.Join(dataDir, "network")
	recs := records{dir: filepath.Join(root, "attachments")}
	ids, err := recs.ids()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	var errs []error
	for _, id := range ids {
		rec, ok, err := recs.get(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(netnsDir, netnsPrefix(name)+id)
		if ok {
			errs = append(errs, detachLinks(rec.Links))
			path = rec.NetNSPath
		}
		errs = append(errs, nspath.Remove(path), recs.remove(id))
	}
	errs = append(errs, os.RemoveAll(filepath.Join(root, "files")))
	errs = append(errs, deleteOverlay(name), rules.New(name).Destroy())
	return errors.Join(errs...)
}
