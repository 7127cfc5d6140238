package apiserver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeVolumeNode is a NodeService that holds volumes of given sizes and
// records the ones it is asked to remove.
type fakeVolumeNode struct {
	berthv1.UnimplementedNodeServiceServer
	sizes map[string]int64 // by name
	// refuse, when set, is the node's answer to every RemoveVolume.
	refuse error

	mu      sync.Mutex
	removed []string
}

func (f *fakeVolumeNode) VolumeUsage(_ context.Context, req *berthv1.NodeVolumeUsageRequest) (*berthv1.NodeVolumeUsageResponse, error) {
	resp := &berthv1.NodeVolumeUsageResponse{}
	for _, ref := range req.Volumes {
		size, ok := f.sizes[ref.Name]
		resp.Volumes = append(resp.Volumes, &berthv1.NodeVolumeUsage{Namespace: ref.Namespace, Name: ref.Name, SizeBytes: size, Exists: ok})
	}
	return resp, nil
}

func (f *fakeVolumeNode) RemoveVolume(_ context.Context, req *berthv1.NodeRemoveVolumeRequest) (*berthv1.NodeRemoveVolumeResponse, error) {
	if f.refuse != nil {
		return nil, f.refuse
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, req.Namespace+"/"+req.Name)
	return &berthv1.NodeRemoveVolumeResponse{}, nil
}

func (f *fakeVolumeNode) removedVolumes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

// putVolumes stores volume records of the default namespace.
func putVolumes(t *testing.T, s *Server, vols ...*berthv1.Volume) {
	t.Helper()
	var txn store.Txn
	for _, v := range vols {
		v.Namespace = DefaultNamespace
		v.Meta = &berthv1.Meta{Id: store.NewID(), CreatedAt: timestamppb.Now()}
		txn.Put(store.VolumeKey(v.Namespace, v.Name), v)
	}
	commitAndWait(t, s, &txn)
}

func commitAndWait(t *testing.T, s *Server, txn *store.Txn) {
	t.Helper()
	rev, err := s.cfg.Store.Commit(t.Context(), txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(t.Context(), rev); err != nil {
		t.Fatal(err)
	}
}

// volumeTask is a task of shop/db in slot, on node, that mounts
// shop_data.
func volumeTask(id string, slot uint64, node string, state berthv1.TaskState) *berthv1.Task {
	tk := execTestTask(id, "db", slot, node, state)
	tk.Meta.CreatedAt = timestamppb.Now()
	tk.Spec = &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "shop_data", Target: "/data"}}}
	return tk
}

// volumeCluster has node-1 (reachable, holding shop_data.1 and .2),
// node-3 (ready but not answering) and node-4 (down).
func volumeCluster(t *testing.T) (*buildCluster, *fakeVolumeNode) {
	c := newBuildCluster(t)
	n1 := &fakeVolumeNode{sizes: map[string]int64{"shop_data.1": 4096, "shared.1": 1}}
	c.addNodeService("n1", "node-1", n1)
	addNode(t, c.srv, &berthv1.Node{Meta: &berthv1.Meta{Id: "n3"}, Name: "node-3", Address: "127.0.0.1:1", Status: berthv1.NodeStatus_NODE_STATUS_READY})
	addNode(t, c.srv, &berthv1.Node{Meta: &berthv1.Meta{Id: "n4"}, Name: "node-4", Address: "127.0.0.1:1", Status: berthv1.NodeStatus_NODE_STATUS_DOWN})
	putVolumes(t, c.srv,
		&berthv1.Volume{Name: "shop_data.1", Source: "shop_data", App: "shop", Service: "db", Slot: 1, NodeId: "n1", TaskId: "db-1"},
		&berthv1.Volume{Name: "shop_data.2", Source: "shop_data", App: "shop", Service: "db", Slot: 2, NodeId: "n1"},
		&berthv1.Volume{Name: "shop_data.3", Source: "shop_data", App: "shop", Service: "db", Slot: 3, NodeId: "n3"},
		&berthv1.Volume{Name: "shop_data.4", Source: "shop_data", App: "shop", Service: "db", Slot: 4, NodeId: "n4"},
		&berthv1.Volume{Name: "shared.1", Source: "shared", Service: "db", Slot: 1, NodeId: "n1", TaskId: "db-1"},
		&berthv1.Volume{Name: "blog_data.1", Source: "blog_data", App: "blog", Service: "db", Slot: 1},
	)
	return c, n1
}

func TestListAndGetVolumes(t *testing.T) {
	c, _ := volumeCluster(t)
	run := berthv1.TaskState_TASK_STATE_RUNNING
	putTasks(t, c.srv, volumeTask("db-1", 1, "n1", run), volumeTask("db-4-old", 4, "n4", berthv1.TaskState_TASK_STATE_ORPHANED))
	resp, err := c.client.ListVolumes(t.Context(), &berthv1.ListVolumesRequest{Namespace: DefaultNamespace, App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ name, node, task, sizeError string }
	var got []row
	sizes := map[string]int64{}
	for _, v := range resp.Volumes {
		got = append(got, row{v.GetVolume().GetName(), v.NodeName, v.Task, v.SizeError})
		sizes[v.GetVolume().GetName()] = v.SizeBytes
	}
	want := []row{
		{"shared.1", "node-1", "", ""}, // external, used by a task of shop
		{"shop_data.1", "node-1", "shop/db.1", ""},
		{"shop_data.2", "node-1", "", "node node-1 has no data for it yet"},
		{"shop_data.3", "node-3", "", "node node-3 cannot be reached: "},
		{"shop_data.4", "node-4", "", "node node-4 is down"},
	}
	if len(got) != len(want) {
		t.Fatalf("volumes %v, want %v", got, want)
	}
	for i := range want {
		if got[i].name != want[i].name || got[i].node != want[i].node || got[i].task != want[i].task || !strings.HasPrefix(got[i].sizeError, want[i].sizeError) ||
			(want[i].sizeError == "" && got[i].sizeError != "") {
			t.Errorf("volume %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if sizes["shop_data.1"] != 4096 {
		t.Errorf("size of shop_data.1: %d, want 4096", sizes["shop_data.1"])
	}

	all, err := c.client.ListVolumes(t.Context(), &berthv1.ListVolumesRequest{})
	if err != nil || len(all.Volumes) != 6 {
		t.Errorf("all volumes: %d, %v; want 6", len(all.GetVolumes()), err)
	}
	v, err := c.client.GetVolume(t.Context(), &berthv1.GetVolumeRequest{Name: "blog_data.1"})
	if err != nil || v.SizeError != "not on a node yet: no task has used it" || v.NodeName != "" {
		t.Errorf("GetVolume blog_data.1: %v, %v", v, err)
	}
	_, err = c.client.GetVolume(t.Context(), &berthv1.GetVolumeRequest{Name: "nope"})
	wantCode(t, "GetVolume nope", err, codes.NotFound, `volume "nope" not found in namespace "default"; berth volume ls lists the volumes`)
}

func TestRemoveVolume(t *testing.T) {
	c, n1 := volumeCluster(t)
	putTasks(t, c.srv, volumeTask("db-1", 1, "n1", berthv1.TaskState_TASK_STATE_RUNNING),
		// Waiting for node-4: it does not hold the volume back.
		volumeTask("db-4-new", 4, "", berthv1.TaskState_TASK_STATE_PENDING))
	remove := func(name string, force bool) error {
		_, err := c.client.RemoveVolume(t.Context(), &berthv1.RemoveVolumeRequest{Name: name, Force: force})
		return err
	}
	exists := func(name string) bool {
		_, ok := c.srv.cfg.Cache.Volume(DefaultNamespace, name)
		return ok
	}

	wantCode(t, "in use", remove("shop_data.1", true), codes.FailedPrecondition,
		"volume shop_data.1 is used by task db.1 (db-1) of service shop/db, which is meant to run; scale the service down (berth scale shop/db=N) or delete its app first")

	if err := remove("shop_data.2", false); err != nil {
		t.Fatalf("remove shop_data.2: %v", err)
	}
	if exists("shop_data.2") || !slices.Equal(n1.removedVolumes(), []string{"default/shop_data.2"}) {
		t.Errorf("after removing shop_data.2: record kept %v, node removed %v", exists("shop_data.2"), n1.removedVolumes())
	}

	wantCode(t, "node down", remove("shop_data.4", false), codes.FailedPrecondition,
		"volume shop_data.4: node node-4, which holds its data, cannot be reached (node node-4 is down); try again when it is back, or remove only the record with berth volume rm --force shop_data.4")
	wantCode(t, "node not answering", remove("shop_data.3", false), codes.FailedPrecondition,
		"volume shop_data.3: node node-3, which holds its data, cannot be reached (")
	if !exists("shop_data.3") || !exists("shop_data.4") {
		t.Error("a refused remove deleted the record")
	}
	if err := remove("shop_data.4", true); err != nil || exists("shop_data.4") {
		t.Errorf("remove --force shop_data.4: %v; record kept %v", err, exists("shop_data.4"))
	}
	if err := remove("blog_data.1", false); err != nil || exists("blog_data.1") {
		t.Errorf("remove of a volume on no node: %v", err)
	}

	n1.refuse = status.Error(codes.FailedPrecondition, "a container uses it")
	wantCode(t, "node refuses", remove("shared.1", true), codes.FailedPrecondition, "volume shared.1: node node-1 did not remove its data: a container uses it")
	if !exists("shared.1") {
		t.Error("the record went though the node kept the data")
	}
	wantCode(t, "unknown", remove("nope", false), codes.NotFound, "berth volume ls")
}

func TestDeleteAppWithVolumes(t *testing.T) {
	c, n1 := volumeCluster(t)
	grace := &berthv1.Service{Meta: &berthv1.Meta{Id: "svc-db"}, Namespace: DefaultNamespace, App: "shop", Name: "db", Spec: &berthv1.ServiceSpec{}}
	var txn store.Txn
	txn.Put(store.ServiceKey(DefaultNamespace, "shop", "db"), grace)
	commitAndWait(t, c.srv, &txn)
	running := volumeTask("db-1", 1, "n1", berthv1.TaskState_TASK_STATE_RUNNING)
	putTasks(t, c.srv, running)

	type result struct {
		resp *berthv1.DeleteAppResponse
		err  error
	}
	sub := c.srv.cfg.Cache.Subscribe()
	defer c.srv.cfg.Cache.Unsubscribe(sub)
	done := make(chan result, 1)
	go func() {
		resp, err := c.client.DeleteApp(t.Context(), &berthv1.DeleteAppRequest{App: "shop", Volumes: true})
		done <- result{resp, err}
	}()
	// The service goes first; the volumes wait for its task to stop.
	deadline := time.After(20 * time.Second)
	for {
		if _, ok := c.srv.cfg.Cache.Service(store.ServiceKey(DefaultNamespace, "shop", "db")); !ok {
			break
		}
		select {
		case <-sub.Ready():
			sub.Drain()
		case <-deadline:
			t.Fatal("the service was not removed")
		}
	}
	select {
	case r := <-done:
		t.Fatalf("DeleteApp returned %v, %v before the task stopped", r.resp, r.err)
	default:
	}
	running.DesiredState = berthv1.TaskState_TASK_STATE_SHUTDOWN
	running.Status.State = berthv1.TaskState_TASK_STATE_SHUTDOWN
	putTask(t, c.srv, running)

	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("DeleteApp did not return once the task stopped")
	}
	wantCode(t, "delete --volumes", r.err, codes.FailedPrecondition,
		"app shop: its services were removed and volumes shop_data.1, shop_data.2 were removed, but 2 of its volumes are left:",
		"volume shop_data.3: node node-3, which holds its data, cannot be reached",
		"volume shop_data.4: node node-4, which holds its data, cannot be reached (node node-4 is down)",
		"remove them with berth volume rm NAME")
	if got := n1.removedVolumes(); !slices.Equal(got, []string{"default/shop_data.1", "default/shop_data.2"}) {
		t.Errorf("node-1 removed %v", got)
	}
	for name, want := range map[string]bool{"shop_data.1": false, "shop_data.3": true, "shared.1": true, "blog_data.1": true} {
		if _, ok := c.srv.cfg.Cache.Volume(DefaultNamespace, name); ok != want {
			t.Errorf("volume %s kept = %v, want %v", name, ok, want)
		}
	}

	// The app is gone; its volumes left can still be removed with it.
	putVolumes(t, c.srv, &berthv1.Volume{Name: "shop_data.5", Source: "shop_data", App: "shop", Service: "db", Slot: 5, NodeId: "n1"})
	n1.refuse = nil
	resp, err := c.client.DeleteApp(t.Context(), &berthv1.DeleteAppRequest{App: "shop", Volumes: true})
	if err == nil || !strings.Contains(status.Convert(err).Message(), "app shop: volumes shop_data.5 were removed, but 2 of its volumes are left") {
		t.Errorf("second delete --volumes: %v, %v", resp, err)
	}
	if _, err := c.client.DeleteApp(t.Context(), &berthv1.DeleteAppRequest{App: "blog"}); status.Code(err) != codes.NotFound {
		t.Errorf("delete of an app with only volumes, without --volumes: %v, want NotFound", err)
	}
}

func TestApplyRefusesAnotherAppsVolume(t *testing.T) {
	s := newServer(t)
	putVolumes(t, s, &berthv1.Volume{Name: "blog_data.1", Source: "blog_data", App: "blog", Service: "db", Slot: 1, NodeId: "n1"})
	db := svc("db", "busybox", 1)
	db.Spec.Mounts = []*berthv1.Mount{{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "blog_data", Target: "/data"}}
	req := &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{db}, Volumes: []*berthv1.AppVolume{{Name: "blog_data", Key: "data"}}}
	_, err := s.Apply(t.Context(), req)
	wantCode(t, "own volume of another app", err, codes.InvalidArgument,
		"volumes.data.name: volume blog_data belongs to app blog; give this volume another name, or use that one with external: true")
	db.Spec.Mounts[0].External = true
	req.Volumes[0].External = true
	if _, err := s.Apply(t.Context(), req); err != nil {
		t.Errorf("apply with the volume external: %v", err)
	}
}
