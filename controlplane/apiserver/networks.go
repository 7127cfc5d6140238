package apiserver

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/ipam"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultNetworkRange is where networks' subnets come from when the
// server is given no range.
var DefaultNetworkRange = netip.MustParsePrefix("10.128.0.0/12")

// networkBits is the size of a subnet given to a network that asks for
// none: 253 addresses for tasks and virtual IPs.
const networkBits = 24

// networkRange is the configured range, or the default.
func (s *Server) networkRange() netip.Prefix {
	if s.cfg.NetworkRange.IsValid() {
		return s.cfg.NetworkRange
	}
	return DefaultNetworkRange
}

// subnets holds the subnets taken, cluster-wide, while one request plans:
// the stored networks', less those it removes, plus those it gives.
type subnets struct {
	taken map[netip.Prefix]string // subnet -> "namespace/name" of its network
}

func (s *Server) takenSubnets() *subnets {
	sn := &subnets{taken: map[netip.Prefix]string{}}
	for _, n := range s.cfg.Cache.Networks(store.NetworksPrefix) {
		if p, err := netip.ParsePrefix(n.GetSubnet()); err == nil {
			sn.taken[p.Masked()] = n.GetNamespace() + "/" + n.GetName()
		}
	}
	return sn
}

// release frees a subnet the request removes.
func (sn *subnets) release(subnet string) {
	if p, err := netip.ParsePrefix(subnet); err == nil {
		delete(sn.taken, p.Masked())
	}
}

// claim takes a subnet asked for, or says what it overlaps and what to do.
func (sn *subnets) claim(s *Server, p netip.Prefix, owner string) string {
	if c := s.cfg.ContainerRange; c.IsValid() && ipam.Overlaps(p, c) {
		return fmt.Sprintf("%s overlaps the cluster's container range %s, which the nodes' own subnets come from; choose a subnet outside it, or leave the subnet out to get a free one", p, c)
	}
	for _, q := range slices.SortedFunc(maps.Keys(sn.taken), comparePrefix) {
		if ipam.Overlaps(p, q) {
			return fmt.Sprintf("%s overlaps %s of network %s; choose another subnet, or leave it out to get a free one", p, q, sn.taken[q])
		}
	}
	sn.taken[p] = owner
	return ""
}

// next takes the next free subnet of the network range.
func (sn *subnets) next(s *Server, owner string) (netip.Prefix, error) {
	used := slices.Collect(maps.Keys(sn.taken))
	if c := s.cfg.ContainerRange; c.IsValid() {
		used = append(used, c)
	}
	p, err := ipam.NextSubnet(s.networkRange(), networkBits, used)
	if err != nil {
		return netip.Prefix{}, err
	}
	sn.taken[p] = owner
	return p, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// createNetwork adds the writes that make n, with the claim on its subnet,
// to txn.
func createNetwork(txn *store.Txn, n *berthv1.Network) {
	key := store.NetworkKey(n.GetNamespace(), n.GetName())
	txn.Create(key, n)
	txn.Claim(store.NetworkSubnetKey(n.GetSubnet()), key)
}

// removeNetwork adds the writes that remove n and its claim to txn.
func removeNetwork(txn *store.Txn, n *berthv1.Network) {
	txn.Delete(store.NetworkKey(n.GetNamespace(), n.GetName()), n.GetMeta().GetVersion())
	txn.Delete(store.NetworkSubnetKey(n.GetSubnet()), 0)
}

// networkUsers returns the services of namespace on network name, as
// "app/service", sorted; except skips those of one app.
func (s *Server) networkUsers(namespace, name, except string) []string {
	var out []string
	for _, svc := range s.cfg.Cache.Services(store.ServicesPrefix + namespace + "/") {
		if svc.GetApp() == except {
			continue
		}
		for _, sn := range svc.GetSpec().GetNetworks() {
			if sn.GetNetwork() == name {
				out = append(out, svc.GetApp()+"/"+svc.GetName())
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// summarizeNetwork says what uses n: its services, and how many live
// tasks hold an address on it.
func (s *Server) summarizeNetwork(n *berthv1.Network) *berthv1.NetworkSummary {
	out := &berthv1.NetworkSummary{Network: n}
	for _, svc := range s.cfg.Cache.Services(store.ServicesPrefix + n.GetNamespace() + "/") {
		if !slices.ContainsFunc(svc.GetSpec().GetNetworks(), func(sn *berthv1.ServiceNetwork) bool { return sn.GetNetwork() == n.GetName() }) {
			continue
		}
		out.Services = append(out.Services, svc.GetApp()+"/"+svc.GetName())
	}
	slices.Sort(out.Services)
	// Tasks outlive a spec change that leaves the network, so every task
	// of the namespace is looked at, not only those of its services.
	for _, t := range s.cfg.Cache.Tasks() {
		if t.GetNamespace() != n.GetNamespace() || !taskstate.Live(t) {
			continue
		}
		for _, tn := range t.GetNetworks() {
			if tn.GetNetworkId() == n.GetMeta().GetId() {
				out.Tasks++
				break
			}
		}
	}
	return out
}

// CreateNetwork makes a shared network, which apps join as external.
func (s *Server) CreateNetwork(ctx context.Context, req *berthv1.CreateNetworkRequest) (*berthv1.Network, error) {
	ns := namespaceOf(req.Namespace)
	var errs validation.Errors
	if err := validation.ValidateName("namespace", ns); err != nil {
		errs = append(errs, validation.FieldError{Field: "namespace", Reason: err.Error()})
	}
	if err := validation.ValidateName("network", req.Name); err != nil {
		errs = append(errs, validation.FieldError{Field: "name", Reason: err.Error()})
	}
	var asked netip.Prefix
	if req.Subnet != "" {
		p, err := validation.ParseSubnet(req.Subnet)
		if err != nil {
			errs = append(errs, validation.FieldError{Field: "subnet", Reason: err.Error()})
		}
		asked = p
	}
	for k := range req.Labels {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, validation.FieldError{Field: "labels", Reason: "a label has an empty key"})
		}
	}
	if len(errs) > 0 {
		return nil, errs.GRPCStatus().Err()
	}
	for attempt := 0; ; attempt++ {
		if _, ok := s.cfg.Cache.Network(ns, req.Name); ok {
			return nil, status.Errorf(codes.AlreadyExists, "network %q already exists in namespace %q; choose another name, or remove it first with berth network rm %s", req.Name, ns, req.Name)
		}
		taken := s.takenSubnets()
		subnet := asked
		if subnet.IsValid() {
			if why := taken.claim(s, subnet, ns+"/"+req.Name); why != "" {
				return nil, validation.Errors{{Field: "subnet", Reason: why}}.GRPCStatus().Err()
			}
		} else {
			p, err := taken.next(s, ns+"/"+req.Name)
			if err != nil {
				return nil, status.Error(codes.ResourceExhausted, err.Error())
			}
			subnet = p
		}
		ts := timestamppb.Now()
		n := &berthv1.Network{
			Meta:      &berthv1.Meta{Id: store.NewID(), CreatedAt: ts, UpdatedAt: ts},
			Namespace: ns, Name: req.Name, Subnet: subnet.String(), Internal: req.Internal, Labels: req.Labels,
		}
		var txn store.Txn
		createNetwork(&txn, n)
		rev, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		n.Meta.Version = rev
		s.log.Info("network created", "namespace", ns, "network", req.Name, "subnet", n.Subnet)
		s.cfg.Store.RecordEvent(networkEvent(ns, req.Name, "create", "subnet "+n.Subnet))
		if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
			return nil, storeError(err)
		}
		if stored, ok := s.cfg.Cache.Network(ns, req.Name); ok && stored.GetMeta().GetId() == n.Meta.Id {
			return stored, nil
		}
		return n, nil
	}
}

// ListNetworks lists the networks of a namespace (every namespace the
// caller may see with all_namespaces), with what uses each.
func (s *Server) ListNetworks(ctx context.Context, req *berthv1.ListNetworksRequest) (*berthv1.ListNetworksResponse, error) {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	prefix := sc.prefix(store.NetworksPrefix)
	resp := &berthv1.ListNetworksResponse{}
	for _, n := range s.cfg.Cache.Networks(prefix) {
		if !sc.has(n.GetNamespace()) {
			continue
		}
		resp.Networks = append(resp.Networks, s.summarizeNetwork(n))
	}
	return resp, nil
}

// GetNetwork returns one network with what uses it.
func (s *Server) GetNetwork(ctx context.Context, req *berthv1.GetNetworkRequest) (*berthv1.NetworkSummary, error) {
	ns := namespaceOf(req.Namespace)
	n, ok := s.cfg.Cache.Network(ns, req.Name)
	if !ok {
		return nil, networkNotFound(ns, req.Name)
	}
	return s.summarizeNetwork(n), nil
}

// RemoveNetwork removes a network made with CreateNetwork that no service
// uses; an app's own networks go with the app.
func (s *Server) RemoveNetwork(ctx context.Context, req *berthv1.RemoveNetworkRequest) (*berthv1.RemoveNetworkResponse, error) {
	ns := namespaceOf(req.Namespace)
	for attempt := 0; ; attempt++ {
		n, ok := s.cfg.Cache.Network(ns, req.Name)
		if !ok {
			return nil, networkNotFound(ns, req.Name)
		}
		if n.GetApp() != "" {
			return nil, status.Errorf(codes.FailedPrecondition, "network %q belongs to app %q and goes with it: remove it from the app's Compose file and apply, or delete the app (berth delete app %s)", req.Name, n.GetApp(), n.GetApp())
		}
		if users := s.networkUsers(ns, req.Name, ""); len(users) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "network %q is used by %s; take the network out of their Compose files (or delete their apps) first", req.Name, joinServices(users))
		}
		var txn store.Txn
		removeNetwork(&txn, n)
		rev, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.log.Info("network removed", "namespace", ns, "network", req.Name)
		s.cfg.Store.RecordEvent(networkEvent(ns, req.Name, "remove", "subnet "+n.GetSubnet()+" freed"))
		return &berthv1.RemoveNetworkResponse{}, storeError(s.cfg.Cache.WaitRevision(ctx, rev))
	}
}

func networkNotFound(ns, name string) error {
	return status.Errorf(codes.NotFound, "network %q not found in namespace %q; berth network ls lists the networks", name, ns)
}

// joinServices names services for a message: "service a/web",
// "services a/web and b/db".
func joinServices(names []string) string {
	if len(names) == 1 {
		return "service " + names[0]
	}
	return "services " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// eventKindNetwork is the kind of events about networks.
const eventKindNetwork = "network"

// networkEvent records something that happened to a network.
func networkEvent(ns, name, action, message string) *berthv1.Event {
	return &berthv1.Event{
		Kind: eventKindNetwork, ObjectId: ns + "/" + name, Action: action, Message: message,
		Attributes: map[string]string{store.AttrNamespace: ns},
	}
}
