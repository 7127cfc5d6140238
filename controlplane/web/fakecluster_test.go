package web

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeCluster is the cluster API the browser tests' dashboard reads,
// through the real HTTP/JSON gateway: a big app of bigServices services of
// bigReplicas tasks each over bigNodes nodes, and shop/web, two tasks on
// alpha with a spec history, a network and its images.
type fakeCluster struct {
	berthv1.ClusterServiceClient
	services []*berthv1.Service
	tasks    []*berthv1.Task
	nodes    []*berthv1.Node

	mu        sync.Mutex
	rollbacks []*berthv1.RollbackServiceRequest
	execs     int
}

const (
	bigServices = 50
	bigReplicas = 200
	bigNodes    = 20
)

func newFakeCluster() *fakeCluster {
	f := &fakeCluster{}
	now := time.Now()
	ts := func(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-ago)) }
	running := func(t *berthv1.Task, at time.Duration) {
		t.DesiredState = berthv1.TaskState_TASK_STATE_RUNNING
		t.Status = &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING, Timestamp: ts(at)}
		t.History = []*berthv1.StateTransition{{State: berthv1.TaskState_TASK_STATE_RUNNING, At: ts(at)}}
	}
	f.nodes = append(f.nodes, &berthv1.Node{
		Meta: &berthv1.Meta{Id: "node-alpha"}, Name: "alpha", Address: "127.0.0.1:7001", Hostname: "alpha.local", Role: "manager",
		AgentVersion: "v0.9.0", Platform: &berthv1.Platform{Os: "linux", Architecture: "amd64"}, Subnet: "10.10.1.0/24",
		Capacity:     &berthv1.Resources{MilliCpus: 2000, MemoryBytes: 4 << 30},
		Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, Status: berthv1.NodeStatus_NODE_STATUS_READY,
		Labels: map[string]string{"zone": "a", "disk": "ssd"}, AgentLabels: map[string]string{"zone": "a"}, OperatorLabels: map[string]string{"disk": "ssd"},
		Conditions:    []*berthv1.NodeCondition{{Type: "runtime", Ok: true, Since: ts(time.Hour)}, {Type: "disk", Ok: true, Since: ts(time.Hour)}},
		LastHeartbeat: ts(5 * time.Second), StatusSince: ts(time.Hour),
	})
	for i := range bigNodes {
		f.nodes = append(f.nodes, &berthv1.Node{
			Meta: &berthv1.Meta{Id: fmt.Sprintf("node-%02d", i)}, Name: fmt.Sprintf("node-%02d", i),
			Capacity:     &berthv1.Resources{MilliCpus: 8000, MemoryBytes: 16 << 30},
			Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, Status: berthv1.NodeStatus_NODE_STATUS_READY,
		})
	}
	spec := func(tag string, replicas uint64) *berthv1.ServiceSpec {
		return &berthv1.ServiceSpec{
			Image: "localhost/shop:" + tag, Command: []string{"serve", "--port", "8080"}, Env: []string{"MODE=prod"}, Replicas: replicas,
			Mode:         berthv1.ServiceMode_SERVICE_MODE_REPLICATED,
			Reservations: &berthv1.Resources{MilliCpus: 250, MemoryBytes: 256 << 20},
			Networks:     []*berthv1.ServiceNetwork{{Network: "shop_front"}},
		}
	}
	web := &berthv1.Service{
		Meta: &berthv1.Meta{Id: "svc-web"}, Namespace: "default", App: "shop", Name: "web",
		Spec: spec("2", 2), SpecVersion: 2, ChangeCause: "apply", SpecUpdatedAt: ts(10 * time.Minute),
		Revisions: []*berthv1.ServiceRevision{{SpecVersion: 1, Spec: spec("1", 2), CreatedAt: ts(time.Hour), ChangeCause: "apply"}},
		Endpoint:  &berthv1.ServiceEndpoint{VirtualIps: []*berthv1.VirtualIP{{Network: "shop_front", Address: "10.20.0.2"}}},
	}
	f.services = append(f.services, web)
	for slot := uint64(1); slot <= 2; slot++ {
		t := &berthv1.Task{
			Meta: &berthv1.Meta{Id: fmt.Sprintf("task-web-%d", slot)}, Namespace: "default", App: "shop", Service: "web", ServiceId: "svc-web",
			Slot: slot, SpecVersion: 2, Spec: web.Spec, NodeId: "node-alpha",
			Networks: []*berthv1.TaskNetwork{{Network: "shop_front", Address: fmt.Sprintf("10.20.0.%d/24", 10+slot)}},
		}
		running(t, time.Duration(slot)*time.Minute)
		f.tasks = append(f.tasks, t)
	}
	for s := range bigServices {
		name := fmt.Sprintf("svc-%02d", s)
		svc := &berthv1.Service{Meta: &berthv1.Meta{Id: "svc-big-" + name}, Namespace: "default", App: "big", Name: name,
			Spec: &berthv1.ServiceSpec{Image: "localhost/big:1", Replicas: bigReplicas, Mode: berthv1.ServiceMode_SERVICE_MODE_REPLICATED}, SpecVersion: 1}
		f.services = append(f.services, svc)
		for slot := uint64(1); slot <= bigReplicas; slot++ {
			t := &berthv1.Task{
				Meta: &berthv1.Meta{Id: fmt.Sprintf("task-%s-%03d", name, slot)}, Namespace: "default", App: "big", Service: name, ServiceId: svc.Meta.Id,
				Slot: slot, SpecVersion: 1, Spec: svc.Spec, NodeId: fmt.Sprintf("node-%02d", int(slot)%bigNodes),
			}
			running(t, time.Hour)
			f.tasks = append(f.tasks, t)
		}
	}
	return f
}

func (f *fakeCluster) WhoAmI(context.Context, *berthv1.WhoAmIRequest, ...grpc.CallOption) (*berthv1.WhoAmIResponse, error) {
	resp := &berthv1.WhoAmIResponse{Principal: "token/browser-test", Role: "admin"}
	for m := range access.Methods {
		if short, ok := strings.CutPrefix(m, "/berth.v1.ClusterService/"); ok {
			resp.Methods = append(resp.Methods, short)
		}
	}
	return resp, nil
}

func (f *fakeCluster) ListNamespaces(context.Context, *berthv1.ListNamespacesRequest, ...grpc.CallOption) (*berthv1.ListNamespacesResponse, error) {
	return &berthv1.ListNamespacesResponse{Namespaces: []*berthv1.NamespaceSummary{{Namespace: &berthv1.Namespace{Name: "default"}}}}, nil
}

func (f *fakeCluster) ListServices(context.Context, *berthv1.ListServicesRequest, ...grpc.CallOption) (*berthv1.ListServicesResponse, error) {
	resp := &berthv1.ListServicesResponse{}
	for _, s := range f.services {
		resp.Services = append(resp.Services, &berthv1.ServiceSummary{Service: s})
	}
	return resp, nil
}

func (f *fakeCluster) ListTasks(context.Context, *berthv1.ListTasksRequest, ...grpc.CallOption) (*berthv1.ListTasksResponse, error) {
	return &berthv1.ListTasksResponse{Tasks: f.tasks}, nil
}

func (f *fakeCluster) ListNodes(context.Context, *berthv1.ListNodesRequest, ...grpc.CallOption) (*berthv1.ListNodesResponse, error) {
	return &berthv1.ListNodesResponse{Nodes: f.nodes}, nil
}

func (f *fakeCluster) ListEvents(_ context.Context, req *berthv1.ListEventsRequest, _ ...grpc.CallOption) (*berthv1.ListEventsResponse, error) {
	if req.GetService() != "web" {
		return &berthv1.ListEventsResponse{}, nil
	}
	return &berthv1.ListEventsResponse{Events: []*berthv1.Event{
		{At: timestamppb.Now(), Kind: "service", Action: "update", Message: "shop/web: spec version 2 (apply)"},
	}}, nil
}

// quietStream is a server stream that has started and sends nothing until
// its call ends.
type quietStream[T any] struct {
	grpc.ClientStream
	ctx context.Context
}

func (q *quietStream[T]) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (q *quietStream[T]) Trailer() metadata.MD         { return nil }

func (q *quietStream[T]) Recv() (*T, error) {
	<-q.ctx.Done()
	return nil, status.FromContextError(q.ctx.Err()).Err()
}

func (f *fakeCluster) Watch(ctx context.Context, _ *berthv1.WatchRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[berthv1.WatchEvent], error) {
	return &quietStream[berthv1.WatchEvent]{ctx: ctx}, nil
}

func (f *fakeCluster) WatchEvents(ctx context.Context, _ *berthv1.ListEventsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[berthv1.Event], error) {
	return &quietStream[berthv1.Event]{ctx: ctx}, nil
}

func (f *fakeCluster) ListTriggers(context.Context, *berthv1.ListTriggersRequest, ...grpc.CallOption) (*berthv1.ListTriggersResponse, error) {
	return &berthv1.ListTriggersResponse{}, nil
}

func (f *fakeCluster) ListScanResults(context.Context, *berthv1.ListScanResultsRequest, ...grpc.CallOption) (*berthv1.ListScanResultsResponse, error) {
	return &berthv1.ListScanResultsResponse{Results: []*berthv1.ScanSummary{
		{Digest: "sha256:2222", Images: []string{"localhost/shop:2"}, Packages: 40, Counts: map[string]int64{"high": 2, "low": 1}},
	}}, nil
}

// Top answers for the tasks of the service or node asked for: each uses
// 12.5% of a core and 64 MiB, and shop's receive and send.
func (f *fakeCluster) Top(_ context.Context, req *berthv1.TopRequest, _ ...grpc.CallOption) (*berthv1.TopResponse, error) {
	resp := &berthv1.TopResponse{}
	for _, t := range f.tasks {
		if (req.GetApp() != "" && t.App != req.GetApp()) || (req.GetService() != "" && t.Service != req.GetService()) || (req.GetNodeId() != "" && t.NodeId != req.GetNodeId()) {
			continue
		}
		s := &berthv1.TaskStats{TaskId: t.Meta.Id, NodeId: t.NodeId, CpuPercent: 12.5, MemoryBytes: 64 << 20, MemoryLimitBytes: 512 << 20, At: timestamppb.Now()}
		if t.App == "shop" {
			s.NetworkRxBytesPerSecond, s.NetworkTxBytesPerSecond = 2048, 512
		}
		resp.Tasks = append(resp.Tasks, s)
	}
	return resp, nil
}

func (f *fakeCluster) ListImages(context.Context, *berthv1.ListImagesRequest, ...grpc.CallOption) (*berthv1.ListImagesResponse, error) {
	return &berthv1.ListImagesResponse{Nodes: []*berthv1.NodeImages{{NodeId: "node-alpha", NodeName: "alpha", Images: []*berthv1.Image{
		{Name: "localhost/shop:2", Digest: "sha256:2222", Size: 12 << 20, CreatedAt: timestamppb.New(time.Now().Add(-time.Hour))},
		{Name: "localhost/shop:1", Digest: "sha256:1111", Size: 11 << 20, CreatedAt: timestamppb.New(time.Now().Add(-2 * time.Hour))},
	}}}}, nil
}

func (f *fakeCluster) ListRegistries(context.Context, *berthv1.ListRegistriesRequest, ...grpc.CallOption) (*berthv1.ListRegistriesResponse, error) {
	return &berthv1.ListRegistriesResponse{Registries: []*berthv1.RegistryCredential{{Registry: "registry.example:5000", Username: "ci"}}}, nil
}

func (f *fakeCluster) VerifyImages(_ context.Context, req *berthv1.VerifyImagesRequest, _ ...grpc.CallOption) (*berthv1.VerifyImagesResponse, error) {
	resp := &berthv1.VerifyImagesResponse{}
	for _, i := range req.GetImages() {
		v := &berthv1.ImageVerdict{Image: i.GetImage(), Digest: i.GetDigest(), State: berthv1.SignatureState_SIGNATURE_STATE_UNSIGNED}
		if i.GetDigest() == "sha256:2222" {
			v.State, v.Signer = berthv1.SignatureState_SIGNATURE_STATE_SIGNED, "release"
		}
		resp.Verdicts = append(resp.Verdicts, v)
	}
	return resp, nil
}

func (f *fakeCluster) RollbackService(_ context.Context, req *berthv1.RollbackServiceRequest, _ ...grpc.CallOption) (*berthv1.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollbacks = append(f.rollbacks, req)
	return f.services[0], nil
}

// echoExec is an Exec that names its task and writes its input back.
type echoExec struct {
	grpc.ClientStream
	ctx context.Context
	out chan *berthv1.ExecResponse
}

func (e *echoExec) Send(req *berthv1.ExecRequest) error {
	var resp *berthv1.ExecResponse
	switch p := req.GetPart().(type) {
	case *berthv1.ExecRequest_Start:
		if p.Start.GetTaskId() == "" {
			return status.Error(codes.InvalidArgument, "no task")
		}
		resp = &berthv1.ExecResponse{Part: &berthv1.ExecResponse_TaskId{TaskId: p.Start.GetTaskId()}}
	case *berthv1.ExecRequest_Stdin:
		resp = &berthv1.ExecResponse{Part: &berthv1.ExecResponse_Stdout{Stdout: p.Stdin}}
	default:
		return nil
	}
	select {
	case e.out <- resp:
		return nil
	case <-e.ctx.Done():
		return e.ctx.Err()
	}
}

func (e *echoExec) Recv() (*berthv1.ExecResponse, error) {
	select {
	case r := <-e.out:
		return r, nil
	case <-e.ctx.Done():
		return nil, status.FromContextError(e.ctx.Err()).Err()
	}
}

func (e *echoExec) CloseSend() error             { return nil }
func (e *echoExec) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (e *echoExec) Trailer() metadata.MD         { return nil }

func (f *fakeCluster) Exec(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[berthv1.ExecRequest, berthv1.ExecResponse], error) {
	f.mu.Lock()
	f.execs++
	f.mu.Unlock()
	return &echoExec{ctx: ctx, out: make(chan *berthv1.ExecResponse, 64)}, nil
}
