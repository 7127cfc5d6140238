// Package apiserver implements the cluster API (berthv1.ClusterService)
// that the CLI, the dashboard and scripts use. Reads come from the store's
// cache; writes are validated whole and go to etcd in one transaction.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sort"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/api/version"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/snapshot"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/trigger"
	"github.com/berthproject/berth/controlplane/trust"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultNamespace is the namespace of requests that name none.
const DefaultNamespace = "default"

// Config holds the API server's dependencies.
type Config struct {
	Store     *store.Store
	Cache     *store.Cache
	Authority *ca.Authority
	Nodes     *NodeClients
	// KEK seals the data of secrets; nil refuses secrets.
	KEK *seal.Key
	// Registries keeps registry credentials and resolves image tags; nil
	// serves no logins and pins images only from the nodes' digests.
	Registries *registry.Credentials
	Log        *slog.Logger
	// Servers lists the control plane's servers; nil lists none.
	Servers func(context.Context) ([]*berthv1.ServerInfo, error)
	// NetworkRange is where networks' subnets come from (a /24 each unless
	// one is asked for); unset means DefaultNetworkRange.
	NetworkRange netip.Prefix
	// ContainerRange is where nodes' container subnets come from; no
	// network's subnet may overlap it. Unset checks nothing.
	ContainerRange netip.Prefix
	// APITokens follows the stored API tokens (NewAPITokenMirror); it must
	// run while the server serves.
	APITokens *store.Mirror[*berthv1.APIToken]
	// Users follows the stored users (NewUserMirror); it must run while
	// the server serves.
	Users *store.Mirror[*berthv1.User]
	// Triggers follows the stored build triggers and their runs; it must
	// run while the server serves. nil serves no triggers.
	Triggers *trigger.Records
	// Trust keeps signing keys and trust policies and checks images
	// against them; nil serves neither and checks nothing.
	Trust *trust.Trust
	// Snapshots takes snapshots of the cluster; nil serves none.
	Snapshots *snapshot.Maker
}

// Server implements berthv1.ClusterServiceServer.
type Server struct {
	berthv1.UnimplementedClusterServiceServer
	cfg Config
	log *slog.Logger
	// vulnDB holds the vulnerability database this server last read.
	vulnDB vulnDBCache
}

// New returns the API server.
func New(cfg Config) *Server { return &Server{cfg: cfg, log: cfg.Log} }

func namespaceOf(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// storeError maps store errors to gRPC codes: the one place that does.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.Aborted, "the cluster changed while the request ran; try again")
	case errors.Is(err, store.ErrTooLarge):
		// An apply's services, networks and subnet claims go in one
		// transaction.
		return status.Errorf(codes.InvalidArgument, "the change is too large for one write (%v); split the app into smaller apps, or apply it in steps (fewer services or networks at a time)", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, errNoKEK):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// DeleteApp removes every service of an app, and its networks; the
// orchestrator then stops and forgets their tasks. With volumes, it then
// waits for the tasks to stop and removes the app's own volumes too.
func (s *Server) DeleteApp(ctx context.Context, req *berthv1.DeleteAppRequest) (*berthv1.DeleteAppResponse, error) {
	ns := namespaceOf(req.Namespace)
	for attempt := 0; ; attempt++ {
		services := s.cfg.Cache.Services(store.AppServicesPrefix(ns, req.App))
		var networks []*berthv1.Network
		for _, n := range s.cfg.Cache.Networks(store.NamespaceNetworksPrefix(ns)) {
			if n.GetApp() == req.App {
				networks = append(networks, n)
			}
		}
		var txn store.Txn
		files, err := s.deleteAppFiles(&txn, ns, req.App)
		if err != nil {
			return nil, err
		}
		if len(services) == 0 && len(networks) == 0 && files == 0 {
			if req.Volumes && len(s.appVolumes(ns, req.App)) > 0 {
				// Deleted before without its volumes.
				return s.deleteAppVolumes(ctx, ns, req.App, stopWait(nil), &berthv1.DeleteAppResponse{})
			}
			return nil, status.Errorf(codes.NotFound, "app %q not found in namespace %q; `berth get apps` lists the apps", req.App, ns)
		}
		resp := &berthv1.DeleteAppResponse{}
		for _, svc := range services {
			txn.Delete(store.ServiceKey(ns, req.App, svc.Name), svc.GetMeta().GetVersion())
			resp.RemovedServices = append(resp.RemovedServices, svc.Name)
		}
		for _, n := range networks {
			if users := s.networkUsers(ns, n.GetName(), req.App); len(users) > 0 {
				return nil, status.Errorf(codes.FailedPrecondition, "network %s of app %s is used by %s; take the network out of their Compose files (or delete their apps) first", n.GetName(), req.App, joinServices(users))
			}
			removeNetwork(&txn, n)
		}
		rev, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.log.Info("app deleted", "namespace", ns, "app", req.App, "services", len(services), "networks", len(networks))
		s.cfg.Store.RecordEvent(appEvent(ns, req.App, "remove", fmt.Sprintf("%d services and %d networks removed", len(services), len(networks))))
		if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil || !req.Volumes {
			return resp, storeError(err)
		}
		return s.deleteAppVolumes(ctx, ns, req.App, stopWait(services), resp)
	}
}

// ListApps summarizes the apps of a namespace (with all_namespaces, of
// every namespace the caller may see).
func (s *Server) ListApps(ctx context.Context, req *berthv1.ListAppsRequest) (*berthv1.ListAppsResponse, error) {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	apps := map[string]*berthv1.App{}
	var order []string
	for _, svc := range s.cfg.Cache.Services(sc.prefix(store.ServicesPrefix)) {
		if !sc.has(svc.Namespace) {
			continue
		}
		key := svc.Namespace + "/" + svc.App
		a := apps[key]
		if a == nil {
			a = &berthv1.App{Namespace: svc.Namespace, Name: svc.App}
			apps[key] = a
			order = append(order, key)
		}
		a.Services = append(a.Services, svc.Name)
		desired, running := s.counts(svc)
		a.DesiredTasks += desired
		a.RunningTasks += running
	}
	resp := &berthv1.ListAppsResponse{}
	for _, k := range order {
		resp.Apps = append(resp.Apps, apps[k])
	}
	return resp, nil
}

// counts returns how many tasks a service wants and how many run.
func (s *Server) counts(svc *berthv1.Service) (desired, running uint64) {
	tasks := s.cfg.Cache.ServiceTasks(svc.GetMeta().GetId())
	if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		for _, t := range tasks {
			if t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING && taskstate.Live(t) {
				desired++
			}
		}
	} else {
		desired = svc.GetSpec().GetReplicas()
	}
	for _, t := range tasks {
		if t.DesiredState == berthv1.TaskState_TASK_STATE_RUNNING && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			running++
		}
	}
	return desired, running
}

// GetService returns one service.
func (s *Server) GetService(ctx context.Context, req *berthv1.GetServiceRequest) (*berthv1.Service, error) {
	ns := namespaceOf(req.Namespace)
	svc, ok := s.cfg.Cache.Service(store.ServiceKey(ns, req.App, req.Name))
	if !ok {
		return nil, status.Errorf(codes.NotFound, "service %s/%s not found in namespace %q", req.App, req.Name, ns)
	}
	return svc, nil
}

// ListServices lists services with their task counts.
func (s *Server) ListServices(ctx context.Context, req *berthv1.ListServicesRequest) (*berthv1.ListServicesResponse, error) {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	prefix := sc.prefix(store.ServicesPrefix)
	if !sc.all && req.App != "" {
		prefix = store.AppServicesPrefix(sc.one, req.App)
	}
	resp := &berthv1.ListServicesResponse{}
	for _, svc := range s.cfg.Cache.Services(prefix) {
		if !sc.has(svc.Namespace) || (req.App != "" && svc.App != req.App) {
			continue
		}
		desired, running := s.counts(svc)
		resp.Services = append(resp.Services, &berthv1.ServiceSummary{Service: svc, DesiredTasks: desired, RunningTasks: running})
	}
	return resp, nil
}

// ListTasks lists tasks. By default it shows, for each slot, the newest
// task and any still running; all adds the history.
func (s *Server) ListTasks(ctx context.Context, req *berthv1.ListTasksRequest) (*berthv1.ListTasksResponse, error) {
	var tasks []*berthv1.Task
	if req.NodeId != "" {
		tasks = s.cfg.Cache.NodeTasks(req.NodeId)
	} else {
		tasks = s.cfg.Cache.Tasks()
	}
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	resp := &berthv1.ListTasksResponse{}
	newest := map[string]*berthv1.Task{}
	for _, t := range tasks {
		if !sc.has(t.Namespace) || (req.App != "" && t.App != req.App) || (req.Service != "" && t.Service != req.Service) {
			continue
		}
		if req.All || taskstate.Live(t) {
			resp.Tasks = append(resp.Tasks, t)
		}
		// The newest task counts even when finished: a replacement that
		// already failed must show beside the old task still stopping.
		key := t.ServiceId + "/" + taskstate.Slot(t)
		if cur := newest[key]; cur == nil || t.GetMeta().GetCreatedAt().AsTime().After(cur.GetMeta().GetCreatedAt().AsTime()) {
			newest[key] = t
		}
	}
	if !req.All {
		for _, t := range newest {
			if !taskstate.Live(t) {
				resp.Tasks = append(resp.Tasks, t)
			}
		}
	}
	sort.Slice(resp.Tasks, func(i, j int) bool {
		a, b := resp.Tasks[i], resp.Tasks[j]
		if ka, kb := a.Namespace+"/"+a.App+"/"+a.Service, b.Namespace+"/"+b.App+"/"+b.Service; ka != kb {
			return ka < kb
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.GetMeta().GetCreatedAt().AsTime().After(b.GetMeta().GetCreatedAt().AsTime())
	})
	return resp, nil
}

// ListNodes lists the nodes.
func (s *Server) ListNodes(ctx context.Context, req *berthv1.ListNodesRequest) (*berthv1.ListNodesResponse, error) {
	return &berthv1.ListNodesResponse{Nodes: s.cfg.Cache.Nodes()}, nil
}

// JoinToken returns the token agents join with.
func (s *Server) JoinToken(ctx context.Context, req *berthv1.JoinTokenRequest) (*berthv1.JoinTokenResponse, error) {
	token, expires, err := s.cfg.Authority.JoinToken(ctx, req.Rotate, req.GetTtl().AsDuration(), req.GetUses())
	if err != nil {
		return nil, storeError(err)
	}
	resp := &berthv1.JoinTokenResponse{Token: token}
	if !expires.IsZero() {
		resp.ExpiresAt = timestamppb.New(expires)
	}
	return resp, nil
}

// Version tells what the server runs.
func (s *Server) Version(ctx context.Context, req *berthv1.VersionRequest) (*berthv1.VersionResponse, error) {
	return &berthv1.VersionResponse{
		Version:   version.String(),
		GoVersion: runtime.Version(),
		ClusterId: s.cfg.Authority.ClusterID(),
	}, nil
}

// ListServers lists the control plane's servers, the leader marked.
func (s *Server) ListServers(ctx context.Context, _ *berthv1.ListServersRequest) (*berthv1.ListServersResponse, error) {
	if s.cfg.Servers == nil {
		return &berthv1.ListServersResponse{}, nil
	}
	list, err := s.cfg.Servers(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return &berthv1.ListServersResponse{Servers: list}, nil
}

// Watch streams changes to the nodes, services and tasks asked for:
// every node, and the services and tasks of the namespace asked for (with
// all_namespaces, of every namespace the caller may see).
func (s *Server) Watch(req *berthv1.WatchRequest, stream berthv1.ClusterService_WatchServer) error {
	sub := s.cfg.Cache.Subscribe()
	defer s.cfg.Cache.Unsubscribe(sub)
	// The headers say the watch is on: a client (the HTTP gateway, the
	// dashboard) can read its listing now and miss no change after it.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	ctx := stream.Context()
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	match := func(ns, app string) bool {
		return sc.has(ns) && (req.App == "" || req.App == app)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Ready():
		}
		events, overflowed := sub.Drain()
		if overflowed {
			return status.Error(codes.ResourceExhausted, "the watch fell too far behind; start it again")
		}
		for _, ev := range events {
			out := &berthv1.WatchEvent{Action: berthv1.WatchAction_WATCH_ACTION_PUT}
			if ev.Action == store.ActionDelete {
				out.Action = berthv1.WatchAction_WATCH_ACTION_DELETE
			}
			switch o := ev.Object.(type) {
			case *berthv1.Node:
				out.Object = &berthv1.WatchEvent_Node{Node: o}
			case *berthv1.Service:
				if !match(o.Namespace, o.App) {
					continue
				}
				out.Object = &berthv1.WatchEvent_Service{Service: o}
			case *berthv1.Task:
				if !match(o.Namespace, o.App) {
					continue
				}
				out.Object = &berthv1.WatchEvent_Task{Task: o}
			default:
				continue
			}
			if err := stream.Send(out); err != nil {
				return err
			}
		}
	}
}
