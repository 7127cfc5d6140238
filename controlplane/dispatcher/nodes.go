package dispatcher

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/constraint"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/api/nodelabels"
	"github.com/berthproject/berth/controlplane/store"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// SubnetPool hands out one container subnet per node from a cluster range.
type SubnetPool struct {
	mu     sync.Mutex
	prefix netip.Prefix
	bits   int
	// offered are subnets handed out lately, which their nodes may not
	// have stored yet: nodes registering at once get different ones
	// instead of racing for the first free one.
	offered map[string]time.Time
}

// offerHold is how long an offered subnet is kept back for its node.
const offerHold = time.Minute

// NewSubnetPool splits cidr into subnets of size /bits.
func NewSubnetPool(cidr string, bits int) (*SubnetPool, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("container address range %q: %w", cidr, err)
	}
	if !p.Addr().Is4() || bits <= p.Bits() || bits > 30 {
		return nil, fmt.Errorf("container address range %q: need an IPv4 range larger than /%d", cidr, bits)
	}
	return &SubnetPool{prefix: p.Masked(), bits: bits}, nil
}

// Range is the range the pool's subnets come from.
func (p *SubnetPool) Range() netip.Prefix { return p.prefix }

// next returns the first subnet neither in used nor offered lately.
func (p *SubnetPool) next(used map[string]bool) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.offered == nil {
		p.offered = map[string]time.Time{}
	}
	for s, at := range p.offered {
		if used[s] || now.Sub(at) > offerHold {
			delete(p.offered, s)
		}
	}
	step := uint32(1) << (32 - p.bits)
	base := p.prefix.Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	count := uint32(1) << (p.bits - p.prefix.Bits())
	for i := uint32(0); i < count; i++ {
		a := start + i*step
		s := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), p.bits).String()
		if _, held := p.offered[s]; !used[s] && !held {
			p.offered[s] = now
			return s, nil
		}
	}
	return "", fmt.Errorf("every /%d subnet of %s is in use", p.bits, p.prefix)
}

// register refreshes the node of a connecting agent and makes sure it has
// a subnet. The node must exist (Join made it) and cert must be the one
// its record names: an older certificate of the same node id, or one of
// a node removed since, is refused with errNotMember or
// errOtherCertificate before anything is written.
//
// The node's name, hostname and agent labels were fixed at join: what the
// hello says of them is ignored, and returned in claims (what differs, in
// words) for the caller to report. What the agent measures (capacity,
// platform, images, addresses) replaces what was stored; what an operator
// chose (availability, operator labels) is kept. Its role is found anew
// each time (nodeRole); when the servers cannot be listed, a known node
// keeps the role it had.
func (d *Dispatcher) register(ctx context.Context, id string, cert *x509.Certificate, desc *berthv1.NodeDescription) (node *berthv1.Node, claims []string, err error) {
	role, roleKnown := d.nodeRole(ctx, desc.GetAddress())
	serial := identity.SerialHex(cert)
	for attempt := 0; attempt < 5; attempt++ {
		now := timestamppb.Now()
		cur, exists := d.cfg.Cache.Node(id)
		if !exists {
			// The cache may lag a node that joined through another server.
			n := &berthv1.Node{}
			if err := d.cfg.Store.Get(ctx, store.NodeKey(id), n); err == nil {
				cur, exists = n, true
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, nil, err
			}
		}
		if !exists {
			return nil, nil, fmt.Errorf("node %s: %w", id, errNotMember)
		}
		if cur.CertificateSerial != "" && cur.CertificateSerial != serial {
			return nil, nil, fmt.Errorf("node %s (%s) presented certificate %s, but joined with (or last renewed) %s: %w",
				cur.Name, id, serial, cur.CertificateSerial, errOtherCertificate)
		}
		next := proto.Clone(cur).(*berthv1.Node)
		next.Meta.UpdatedAt = now
		if cur.CertificateSerial == "" {
			// Joined before nodes were bound to their certificate: the
			// first certificate seen since binds it, and what the agent
			// says of itself now is fixed from here on.
			next.CertificateSerial = serial
			next.CertificateExpiresAt = timestamppb.New(cert.NotAfter)
			next.Name = cmp.Or(next.Name, desc.GetName())
			next.Hostname = desc.GetHostname()
			if next.OperatorLabels == nil && next.AgentLabels == nil {
				next.AgentLabels = desc.GetLabels()
			}
		}
		claims = identityClaims(next, desc)
		nodelabels.Merge(next)
		next.Address = desc.GetAddress()
		next.Capacity = desc.GetCapacity()
		next.Platform = desc.GetPlatform()
		next.Images = desc.GetImages()
		next.ImageDigests = desc.GetImageDigests()
		next.ContentAddress = desc.GetContentAddress()
		next.AgentVersion = desc.GetAgentVersion()
		next.Overlay = desc.GetOverlay()
		next.Conditions = mergeConditions(cur.GetConditions(), desc.GetConditions())
		if roleKnown || next.Role == "" {
			next.Role = role
		}
		if next.Status != berthv1.NodeStatus_NODE_STATUS_READY {
			next.StatusSince = now
		}
		next.Status = berthv1.NodeStatus_NODE_STATUS_READY
		next.StatusMessage = ""
		next.ContactLoss = berthv1.ContactLoss_CONTACT_LOSS_UNSPECIFIED
		next.LastHeartbeat = now

		var txn store.Txn
		if next.Subnet == "" {
			used := map[string]bool{}
			for _, n := range d.cfg.Cache.Nodes() {
				used[n.Subnet] = true
			}
			s, err := d.cfg.Subnets.next(used)
			if err != nil {
				return nil, nil, err
			}
			next.Subnet = s
			// Claiming the subnet in the same transaction keeps two
			// nodes registering at once from taking the same one.
			txn.Create(store.SubnetKey(s), &berthv1.Meta{Id: id})
		}
		// Guarded by the version read: a node removed meanwhile is not
		// written back.
		txn.Update(store.NodeKey(id), next)
		rev, err := d.cfg.Store.Commit(ctx, &txn)
		if errors.Is(err, store.ErrConflict) {
			if err := d.cfg.Cache.WaitRevision(ctx, d.cfg.Cache.Revision()+1); err != nil {
				return nil, nil, err
			}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if ev := conditionEvent(cur, next); ev != nil {
			d.cfg.Store.RecordEvent(ev)
		}
		return next, claims, d.cfg.Cache.WaitRevision(ctx, rev)
	}
	return nil, nil, fmt.Errorf("node %s: %w", id, store.ErrConflict)
}

// Errors of register that refuse a session.
var (
	errNotMember        = errors.New("the node is not a member of the cluster (it never joined, or `berth node rm` removed it)")
	errOtherCertificate = errors.New("the certificate is not the node's current one")
)

// identityClaims says, in words, where desc (an agent's hello) differs
// from what n fixed at join: a node that says it is now another does not
// become it, and may have been taken over.
func identityClaims(n *berthv1.Node, desc *berthv1.NodeDescription) []string {
	var out []string
	if name := desc.GetName(); name != "" && name != n.Name {
		out = append(out, fmt.Sprintf("node %s says it is now %s; its name stays %s (fixed at join)", n.Name, name, n.Name))
	}
	if h := desc.GetHostname(); h != "" && h != n.Hostname {
		out = append(out, fmt.Sprintf("node %s says its hostname is now %s; it stays %s (fixed at join)", n.Name, h, cmp.Or(n.Hostname, `""`)))
	}
	if l := desc.GetLabels(); !maps.Equal(l, n.AgentLabels) && (len(l) > 0 || len(n.AgentLabels) > 0) {
		out = append(out, fmt.Sprintf("node %s says its labels are now {%s}; its agent labels stay {%s} (fixed at join; `berth node label` sets labels)",
			n.Name, labelWords(l), labelWords(n.AgentLabels)))
	}
	return out
}

func labelWords(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ", ")
}

// nodeRole is the role of a node whose agent listens at address:
// manager when its host is the host of a running server's address (the
// machine runs a Berth server too), worker otherwise. The address is the
// agent's own word, so the session must also come from that machine: from
// a server's host, or over loopback. Otherwise any node could name a
// server's address to be taken for a manager and attract the tasks
// constrained to managers. known is false when the servers could not be
// listed; role is worker then.
func (d *Dispatcher) nodeRole(ctx context.Context, address string) (role string, known bool) {
	if d.cfg.Servers == nil {
		return constraint.RoleWorker, true
	}
	servers, err := d.cfg.Servers(ctx)
	if err != nil {
		d.log.Warn("listing servers for a node's role", "address", address, "err", err)
		return constraint.RoleWorker, false
	}
	host, ok := addressHost(address)
	if !ok {
		return constraint.RoleWorker, true
	}
	from, fromKnown := peerHost(ctx)
	onServer, fromServer := false, !fromKnown || isLoopback(from)
	for _, s := range servers {
		if h, ok := addressHost(s.GetAddress()); ok {
			onServer = onServer || h == host
			fromServer = fromServer || h == from
		}
	}
	if onServer && !fromServer {
		d.log.Warn("an agent names a server's address but connects from elsewhere; it is a worker", "address", address, "from", from)
	}
	if onServer && fromServer {
		return constraint.RoleManager, true
	}
	return constraint.RoleWorker, true
}

// peerHost is the host the caller of ctx's gRPC call connects from.
func peerHost(ctx context.Context) (string, bool) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "", false
	}
	return addressHost(p.Addr.String())
}

func isLoopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// addressHost is the host of a host:port address, an IP address written
// one way; ok is false when there is none, or it stands for every
// address (0.0.0.0), which names no machine.
func addressHost(address string) (string, bool) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	if host == "" {
		return "", false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		return ip.String(), !ip.IsUnspecified()
	}
	return strings.ToLower(host), true
}
