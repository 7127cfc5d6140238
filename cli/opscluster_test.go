package cli

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// opsCluster is a fakeCluster that also answers the day-two RPCs (scale,
// rollback, node updates, rebalance, settings) and plays a script of
// cluster states for the commands that wait.
//
// Each ListServices call after the first moves the script to its next
// state (staying on the last one); ListTasks, ListEvents and GetService
// answer from the current state. With watch set, Watch reports a change
// each time a read leaves a state that is not the last, so a waiting
// command reads the next one at once; without it, Watch is unimplemented
// and the command polls.
type opsCluster struct {
	*fakeCluster
	watch bool

	mu      sync.Mutex
	steps   []clusterState
	step    int
	read    bool
	changed chan struct{}

	scaleErrs    map[string]error // by APP/SERVICE
	rollbackResp *berthv1.Service
	settings     *berthv1.ClusterSettings

	scaleReqs     []*berthv1.ScaleServiceRequest
	rollbackReqs  []*berthv1.RollbackServiceRequest
	restartReqs   []*berthv1.RestartServiceRequest
	nodeReqs      []*berthv1.UpdateNodeRequest
	rebalanceReqs []*berthv1.RebalanceRequest
	settingsReqs  []*berthv1.UpdateSettingsRequest
}

// clusterState is one state of an opsCluster's script.
type clusterState struct {
	services []*berthv1.Service
	tasks    []*berthv1.Task
	events   []*berthv1.Event
}

func newOpsCluster(watch bool, steps ...clusterState) *opsCluster {
	return &opsCluster{
		fakeCluster: &fakeCluster{nodes: testNodes(), tasks: testTasks(time.Now())},
		watch:       watch,
		steps:       steps,
		changed:     make(chan struct{}, 1),
		settings:    &berthv1.ClusterSettings{},
	}
}

func (f *opsCluster) current() clusterState {
	if len(f.steps) == 0 {
		return clusterState{}
	}
	return f.steps[f.step]
}

func (f *opsCluster) ListServices(_ context.Context, req *berthv1.ListServicesRequest) (*berthv1.ListServicesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.read && f.step < len(f.steps)-1 {
		f.step++
	}
	f.read = true
	if f.step < len(f.steps)-1 {
		select {
		case f.changed <- struct{}{}:
		default:
		}
	}
	resp := &berthv1.ListServicesResponse{}
	for _, svc := range f.current().services {
		if req.App == "" || svc.App == req.App {
			resp.Services = append(resp.Services, &berthv1.ServiceSummary{Service: svc})
		}
	}
	return resp, nil
}

func (f *opsCluster) ListTasks(ctx context.Context, req *berthv1.ListTasksRequest) (*berthv1.ListTasksResponse, error) {
	if req.NodeId != "" {
		return f.fakeCluster.ListTasks(ctx, req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &berthv1.ListTasksResponse{}
	for _, t := range f.current().tasks {
		if (req.App == "" || t.App == req.App) && (req.Service == "" || t.Service == req.Service) {
			resp.Tasks = append(resp.Tasks, t)
		}
	}
	return resp, nil
}

func (f *opsCluster) ListEvents(context.Context, *berthv1.ListEventsRequest) (*berthv1.ListEventsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &berthv1.ListEventsResponse{Events: f.current().events}, nil
}

func (f *opsCluster) GetService(_ context.Context, req *berthv1.GetServiceRequest) (*berthv1.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, svc := range f.current().services {
		if svc.App == req.App && svc.Name == req.Name {
			return svc, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "service %s/%s not found", req.App, req.Name)
}

func (f *opsCluster) Watch(req *berthv1.WatchRequest, stream grpc.ServerStreamingServer[berthv1.WatchEvent]) error {
	if !f.watch {
		return status.Error(codes.Unimplemented, "no watch here")
	}
	// A node's heartbeat first: the command must not take it for a change
	// of what it waits for (it would read again, harmlessly).
	if err := stream.Send(&berthv1.WatchEvent{Action: berthv1.WatchAction_WATCH_ACTION_PUT, Object: &berthv1.WatchEvent_Node{Node: &berthv1.Node{}}}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-f.changed:
			ev := &berthv1.WatchEvent{Action: berthv1.WatchAction_WATCH_ACTION_PUT, Object: &berthv1.WatchEvent_Task{Task: &berthv1.Task{}}}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

func (f *opsCluster) ScaleService(_ context.Context, req *berthv1.ScaleServiceRequest) (*berthv1.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scaleReqs = append(f.scaleReqs, req)
	if err := f.scaleErrs[req.App+"/"+req.Service]; err != nil {
		return nil, err
	}
	return &berthv1.Service{App: req.App, Name: req.Service, Spec: &berthv1.ServiceSpec{Replicas: req.Replicas}}, nil
}

func (f *opsCluster) RollbackService(_ context.Context, req *berthv1.RollbackServiceRequest) (*berthv1.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollbackReqs = append(f.rollbackReqs, req)
	if f.rollbackResp == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "service %s/%s has no earlier version to roll back to", req.App, req.Service)
	}
	return f.rollbackResp, nil
}

func (f *opsCluster) RestartService(_ context.Context, req *berthv1.RestartServiceRequest) (*berthv1.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restartReqs = append(f.restartReqs, req)
	if req.Service != "web" {
		return nil, status.Errorf(codes.NotFound, "service %s/%s not found", req.App, req.Service)
	}
	return &berthv1.Service{App: req.App, Name: req.Service, SpecVersion: 7, ChangeCause: "restart"}, nil
}

func (f *opsCluster) UpdateNode(_ context.Context, req *berthv1.UpdateNodeRequest) (*berthv1.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodeReqs = append(f.nodeReqs, req)
	for _, n := range f.nodes {
		if n.Name != req.Node && n.GetMeta().GetId() != req.Node {
			continue
		}
		n = proto.Clone(n).(*berthv1.Node)
		if req.Availability != berthv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED {
			n.Availability = req.Availability
		}
		if n.OperatorLabels == nil {
			n.OperatorLabels = map[string]string{}
		}
		maps.Copy(n.OperatorLabels, req.SetLabels)
		for _, k := range req.RemoveLabels {
			delete(n.OperatorLabels, k)
			delete(n.Labels, k)
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		maps.Copy(n.Labels, req.SetLabels)
		return n, nil
	}
	return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", req.Node)
}

func (f *opsCluster) Rebalance(_ context.Context, req *berthv1.RebalanceRequest) (*berthv1.RebalanceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rebalanceReqs = append(f.rebalanceReqs, req)
	resp := &berthv1.RebalanceResponse{}
	for _, svc := range f.current().services {
		if (req.App == "" || svc.App == req.App) && (req.Service == "" || svc.Name == req.Service) &&
			svc.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
			resp.Services = append(resp.Services, svc.App+"/"+svc.Name)
		}
	}
	return resp, nil
}

func (f *opsCluster) GetSettings(context.Context, *berthv1.GetSettingsRequest) (*berthv1.ClusterSettings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proto.Clone(f.settings).(*berthv1.ClusterSettings), nil
}

func (f *opsCluster) UpdateSettings(_ context.Context, req *berthv1.UpdateSettingsRequest) (*berthv1.ClusterSettings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settingsReqs = append(f.settingsReqs, req)
	f.settings = proto.Clone(req.Settings).(*berthv1.ClusterSettings)
	return f.settings, nil
}

// The builders below make the objects of scripted states.

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec int) *timestamppb.Timestamp {
	return timestamppb.New(testEpoch.Add(time.Duration(sec) * time.Second))
}

// svcAt is a replicated service of app shop at spec version v (made at
// second v*10) with replicas, at etcd revision rev.
func svcAt(name string, v, replicas uint64, rev int64) *berthv1.Service {
	return &berthv1.Service{
		Meta: &berthv1.Meta{Id: "svc-" + name, Version: rev}, Namespace: "default", App: "shop", Name: name,
		Spec:        &berthv1.ServiceSpec{Image: fmt.Sprintf("shop/%s:%d", name, v), Mode: berthv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: replicas},
		SpecVersion: v, ChangeCause: "apply", SpecUpdatedAt: at(int(v) * 10),
	}
}

// withUpdate sets svc's update status, started when its spec was made.
func withUpdate(svc *berthv1.Service, state berthv1.UpdateState, msg string) *berthv1.Service {
	svc.UpdateStatus = &berthv1.UpdateStatus{State: state, StartedAt: svc.SpecUpdatedAt, Message: msg, FromVersion: svc.SpecVersion - 1}
	return svc
}

// taskOf is slot's task of svc's spec version v, in state.
func taskOf(svc *berthv1.Service, slot, v uint64, state berthv1.TaskState) *berthv1.Task {
	return &berthv1.Task{
		Meta:      &berthv1.Meta{Id: fmt.Sprintf("t-%s-%d-v%d", svc.Name, slot, v), CreatedAt: at(int(v)*10 + int(slot))},
		Namespace: svc.Namespace, App: svc.App, Service: svc.Name, ServiceId: svc.GetMeta().GetId(),
		Slot: slot, SpecVersion: v, NodeId: "n1aaaaaaaaaaaaaaaa",
		DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
		Status:       &berthv1.TaskStatus{State: state, Timestamp: at(int(v)*10 + int(slot))},
	}
}

// runningTasks are replicas running tasks of svc's current version.
func runningTasks(svc *berthv1.Service) []*berthv1.Task {
	var out []*berthv1.Task
	for slot := uint64(1); slot <= svc.Spec.Replicas; slot++ {
		out = append(out, taskOf(svc, slot, svc.SpecVersion, berthv1.TaskState_TASK_STATE_RUNNING))
	}
	return out
}

// stepsRead reports how far a command read the script.
func (f *opsCluster) stepsRead(t *testing.T) int {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.step
}
