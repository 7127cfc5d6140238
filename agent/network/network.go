// Package network connects containers to the node's network with CNI: each
// container gets a named network namespace, a veth on the node's bridge
// with an address from the node's subnet, and its published ports mapped
// from the host.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("network: closed")

// Attachment is a container's place on the network.
type Attachment struct {
	// NetNSPath is the bind-mounted network namespace to put in the
	// container's OCI spec.
	NetNSPath string
	// IP is the container's address in the node's subnet.
	IP string
}

// CNI attaches containers to the node's bridge network. It is safe for
// concurrent use; calls for the same id are serialized.
type CNI struct {
	cfg     Config
	names   names
	ipamDir string
	records records
	cni     gocni.CNI // bridge and portmap
	plain   gocni.CNI // bridge alone, for containers that publish no port
	log     *slog.Logger

	locks idLocks
	// plugins serializes the CNI plugin calls in race-detector builds
	// only (see serializePlugins).
	plugins sync.Mutex

	masqMu   sync.Mutex
	masqDone bool

	mu     sync.RWMutex // guards closed against calls in flight
	closed bool
}

// New prepares the network of the node cfg describes. It creates nothing
// on the host: the bridge appears with the first attachment.
func New(cfg Config) (*CNI, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	subnet, _ := parseSubnet(cfg.Subnet) // checked by Validate
	n := namesFor(cfg.Name)
	if err := checkSubnetFree(subnet, n.bridge); err != nil {
		return nil, err
	}
	root := filepath.Join(cfg.DataDir, "network")
	ipamDir := filepath.Join(root, "ipam")
	// Loopback is brought up by hand (loopbackUp), not by a plugin.
	load := func(withPortmap bool) (gocni.CNI, error) {
		list, err := conflist(n, subnet, ipamDir, withPortmap)
		if err != nil {
			return nil, err
		}
		lib, err := gocni.New(gocni.WithPluginDir(cfg.PluginDirs))
		if err != nil {
			return nil, fmt.Errorf("network: init CNI: %w", err)
		}
		if err := lib.Load(gocni.WithConfListBytes(list)); err != nil {
			return nil, fmt.Errorf("network: load CNI config for node %q: %w", cfg.Name, err)
		}
		return lib, nil
	}
	withPorts, err := load(true)
	if err != nil {
		return nil, err
	}
	plain, err := load(false)
	if err != nil {
		return nil, err
	}
	return &CNI{
		cfg:     cfg,
		names:   n,
		ipamDir: ipamDir,
		records: records{dir: filepath.Join(root, "attachments")},
		cni:     withPorts,
		plain:   plain,
		log:     slog.Default().With("component", "network", "bridge", n.bridge),
	}, nil
}

// checkSubnetFree fails when an interface other than the node's own bridge
// has an address in subnet: containers there would be unreachable, as when
// two clusters on one machine hand out the same range.
func checkSubnetFree(subnet netip.Prefix, bridge string) error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("network: listing interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Name == bridge {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if ok && subnet.Contains(ip.Unmap()) {
				return fmt.Errorf("network: the node's container subnet %s is already used by interface %s on this machine: start the server with another --container-range", subnet, ifc.Name)
			}
		}
	}
	return nil
}

// Bridge returns the name of the node's bridge interface.
func (c *CNI) Bridge() string { return c.names.bridge }

// NetworkName returns the CNI network name, which also names the IPAM
// state directory and appears in the comments of the iptables rules.
func (c *CNI) NetworkName() string { return c.names.network }

// IPAMDir returns the host-local IPAM state directory of the network:
// one file per allocated address.
func (c *CNI) IPAMDir() string { return filepath.Join(c.ipamDir, c.names.network) }

func (c *CNI) netnsPath(id string) string {
	return filepath.Join(c.cfg.NetNSDir, c.names.netnsPrefix+id)
}

// Attach creates the network namespace of container id, connects it to the
// bridge and publishes ports. Attaching an id that is already attached with
// the same ports returns the existing attachment; with other ports it is an
// error, since ports cannot change under a running container.
func (c *CNI) Attach(ctx context.Context, id string, ports []Port) (Attachment, error) {
	if err := validateID(id); err != nil {
		return Attachment{}, err
	}
	ports, err := normalizePorts(ports)
	if err != nil {
		return Attachment{}, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return Attachment{}, ErrClosed
	}
	defer c.locks.lock(id)()

	if a, ok, err := c.existing(ctx, id, ports); err != nil || ok {
		return a, err
	}

	rec := record{ID: id, NetNSPath: c.netnsPath(id), Ports: ports}
	// A namespace without a record is left from a crash before the record
	// was written; nothing else refers to it.
	if err := removeNetNS(rec.NetNSPath); err != nil {
		return Attachment{}, fmt.Errorf("network: attach %s: %w", id, err)
	}
	if err := createNetNS(rec.NetNSPath); err != nil {
		return Attachment{}, fmt.Errorf("network: attach %s: %w", id, err)
	}
	if err := loopbackUp(rec.NetNSPath); err != nil {
		err = fmt.Errorf("network: attach %s: %w", id, err)
		return Attachment{}, errors.Join(err, removeNetNS(rec.NetNSPath))
	}
	// The record goes down before CNI runs, so that a crash at any later
	// point leaves enough for Detach to undo.
	if err := c.records.put(rec); err != nil {
		err = fmt.Errorf("network: attach %s: %w", id, err)
		return Attachment{}, errors.Join(err, removeNetNS(rec.NetNSPath))
	}
	if err := c.ensureMasquerade(ctx); err != nil {
		err = fmt.Errorf("network: attach %s: %w", id, err)
		return Attachment{}, errors.Join(err, c.detach(context.WithoutCancel(ctx), id))
	}
	c.lockPlugins()
	res, err := c.lib(ports).Setup(ctx, id, rec.NetNSPath, gocni.WithCapabilityPortMap(portMappings(ports)))
	c.unlockPlugins()
	if err == nil {
		rec.IP, err = resultIP(res)
	}
	if err == nil {
		err = c.records.put(rec)
	}
	if err != nil {
		err = fmt.Errorf("network: attach %s to bridge %s: %w", id, c.names.bridge, err)
		// Undo with a fresh context: the caller's may be what failed.
		return Attachment{}, errors.Join(err, c.detach(context.WithoutCancel(ctx), id))
	}
	c.log.Debug("attached", "id", id, "ip", rec.IP, "netns", rec.NetNSPath, "ports", len(ports))
	return Attachment{NetNSPath: rec.NetNSPath, IP: rec.IP}, nil
}

// existing returns the finished attachment of id if there is one. A record
// of an Attach that did not finish, or whose namespace is gone (after a
// reboot), is cleaned up so the caller can attach afresh.
func (c *CNI) existing(ctx context.Context, id string, ports []Port) (Attachment, bool, error) {
	rec, ok, err := c.records.get(id)
	if err != nil || !ok {
		return Attachment{}, false, err
	}
	alive, err := isNetNS(rec.NetNSPath)
	if err != nil {
		return Attachment{}, false, err
	}
	if rec.IP == "" || !alive {
		return Attachment{}, false, c.detach(ctx, id)
	}
	if !slices.Equal(rec.Ports, ports) {
		return Attachment{}, false, fmt.Errorf("network: container %s is already attached with ports %v, not %v; detach it first", id, rec.Ports, ports)
	}
	return Attachment{NetNSPath: rec.NetNSPath, IP: rec.IP}, true, nil
}

func resultIP(res *gocni.Result) (string, error) {
	iface, ok := res.Interfaces["eth0"]
	if !ok || len(iface.IPConfigs) == 0 {
		return "", errors.New("CNI result has no address for eth0")
	}
	return iface.IPConfigs[0].IP.String(), nil
}

// Detach disconnects container id, frees its address, deletes the rules
// of its published ports and removes its network namespace. Detaching an
// id that is not attached, or whose namespace is already gone, succeeds.
func (c *CNI) Detach(ctx context.Context, id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	defer c.locks.lock(id)()
	return c.detach(ctx, id)
}

// detach is Detach with the id lock held.
func (c *CNI) detach(ctx context.Context, id string) error {
	rec, ok, err := c.records.get(id)
	if err != nil {
		return err
	}
	if !ok {
		// Only a crash between creating the namespace and writing the
		// record leaves a namespace without a record; CNI never ran.
		if err := removeNetNS(c.netnsPath(id)); err != nil {
			return fmt.Errorf("network: detach %s: %w", id, err)
		}
		return nil
	}
	alive, err := isNetNS(rec.NetNSPath)
	if err != nil {
		return fmt.Errorf("network: detach %s: %w", id, err)
	}
	path := rec.NetNSPath
	if !alive {
		// An empty path tells the plugins to clean up what lives outside
		// the namespace only.
		path = ""
	}
	c.lockPlugins()
	err = c.lib(rec.Ports).Remove(ctx, id, path, gocni.WithCapabilityPortMap(portMappings(rec.Ports)))
	c.unlockPlugins()
	if err != nil {
		return fmt.Errorf("network: detach %s from bridge %s: %w", id, c.names.bridge, err)
	}
	if err := removeNetNS(rec.NetNSPath); err != nil {
		return fmt.Errorf("network: detach %s: %w", id, err)
	}
	if err := c.records.remove(id); err != nil {
		return fmt.Errorf("network: detach %s: %w", id, err)
	}
	c.log.Debug("detached", "id", id, "ip", rec.IP)
	return nil
}

// Attachments lists the ids of the containers that have an attachment
// record, finished or not; an agent compares it with its containers after a
// restart and detaches the rest.
func (c *CNI) Attachments() ([]string, error) {
	ids, err := c.records.ids()
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// Destroy detaches every recorded container and deletes the node's bridge:
// for a node leaving the cluster, and for tests. The CNI stays usable; the
// next Attach makes the bridge again.
func (c *CNI) Destroy(ctx context.Context) error {
	ids, err := c.Attachments()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, c.Detach(ctx, id))
	}
	errs = append(errs, deleteMasquerade(ctx, c.names.network))
	errs = append(errs, deleteLink(ctx, c.names.bridge))
	return errors.Join(errs...)
}

// ensureMasquerade puts the subnet's masquerading rule in place once per
// process (a reboot clears it; a restarted agent puts it back).
func (c *CNI) ensureMasquerade(ctx context.Context) error {
	c.masqMu.Lock()
	defer c.masqMu.Unlock()
	if c.masqDone {
		return nil
	}
	if err := ensureRule(ctx, masqueradeRule(c.names.network, c.cfg.Subnet)); err != nil {
		return err
	}
	c.masqDone = true
	return nil
}

// deleteLink deletes the network interface name if it exists.
func deleteLink(ctx context.Context, name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil // already gone
	}
	out, err := exec.CommandContext(ctx, "ip", "link", "delete", "dev", name).CombinedOutput()
	if err != nil {
		if _, statErr := os.Stat("/sys/class/net/" + name); errors.Is(statErr, os.ErrNotExist) {
			return nil // deleted meanwhile
		}
		return fmt.Errorf("network: delete interface %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close releases the CNI. It leaves every attachment in place, since
// containers keep running across an agent restart; later calls fail with
// ErrClosed.
func (c *CNI) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// idLocks serializes the calls for one id while calls for different ids
// run in parallel.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	sync.Mutex
	refs int
}

// lock locks id and returns its unlock function.
func (l *idLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*idLock)
	}
	k, ok := l.m[id]
	if !ok {
		k = &idLock{}
		l.m[id] = k
	}
	k.refs++
	l.mu.Unlock()

	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}

func (c *CNI) lockPlugins() {
	if serializePlugins {
		c.plugins.Lock()
	}
}

func (c *CNI) unlockPlugins() {
	if serializePlugins {
		c.plugins.Unlock()
	}
}

// lib is the CNI configuration for a container publishing ports.
func (c *CNI) lib(ports []Port) gocni.CNI {
	if len(ports) == 0 {
		return c.plain
	}
	return c.cni
}
