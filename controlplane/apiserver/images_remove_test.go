package apiserver

import (
	"context"
	"slices"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeImageNode is a NodeService that keeps the images it is asked to
// remove while task web-1 uses them, and records the requests.
type fakeImageNode struct {
	berthv1.UnimplementedNodeServiceServer

	mu      sync.Mutex
	removes []*berthv1.NodeRemoveImagesRequest
	prunes  []*berthv1.NodePruneImagesRequest
}

func (f *fakeImageNode) RemoveImages(_ context.Context, req *berthv1.NodeRemoveImagesRequest) (*berthv1.NodeImageRemoval, error) {
	f.mu.Lock()
	f.removes = append(f.removes, req)
	f.mu.Unlock()
	out := &berthv1.NodeImageRemoval{}
	for _, im := range req.Images {
		out.Kept = append(out.Kept, &berthv1.KeptImage{Image: im, TaskIds: []string{"web-1", "gone"}, Running: true})
	}
	return out, nil
}

func (f *fakeImageNode) PruneImages(_ context.Context, req *berthv1.NodePruneImagesRequest) (*berthv1.NodeImageRemoval, error) {
	f.mu.Lock()
	f.prunes = append(f.prunes, req)
	f.mu.Unlock()
	return &berthv1.NodeImageRemoval{Removed: []*berthv1.RemovedImage{{Name: "docker.io/library/old:1", Size: 5}}, FreedBytes: 5}, nil
}

func (f *fakeImageNode) DiskUsage(context.Context, *berthv1.NodeDiskUsageRequest) (*berthv1.NodeDiskUsage, error) {
	return &berthv1.NodeDiskUsage{Images: 2, ImagesBytes: 30, Containers: 1}, nil
}

func TestRemoveImageNamesTheTasksAndFansOut(t *testing.T) {
	c := newBuildCluster(t)
	n1, n2 := &fakeImageNode{}, &fakeImageNode{}
	c.addNodeService("n1", "node-1", n1)
	c.addNodeService("n2", "node-2", n2)
	putTasks(t, c.srv, execTestTask("web-1", "web", 1, "n1", berthv1.TaskState_TASK_STATE_RUNNING))
	ctx := context.Background()

	resp, err := c.client.RemoveImage(ctx, &berthv1.RemoveImageRequest{Images: []string{"web:1"}, NodeId: "node-1", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Nodes) != 1 || resp.Nodes[0].NodeName != "node-1" || len(resp.Nodes[0].Kept) != 1 {
		t.Fatalf("response %v, want node-1 alone, keeping one image", resp)
	}
	k := resp.Nodes[0].Kept[0]
	if k.Image != "docker.io/library/web:1" || !slices.Equal(k.Tasks, []string{"shop/web.1", "task gone"}) {
		t.Errorf("kept %v, want the normalized image and the tasks named", k)
	}
	if got := n1.removes[0]; !got.Force || !slices.Equal(got.Images, []string{"docker.io/library/web:1"}) || len(n2.removes) != 0 {
		t.Errorf("node-1 asked %v, node-2 asked %d times; want node-1 alone with the normalized image and force", got, len(n2.removes))
	}

	pr, err := c.client.PruneImages(ctx, &berthv1.PruneImagesRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Nodes) != 2 || len(n1.prunes) != 1 || len(n2.prunes) != 1 || !n1.prunes[0].All || pr.Nodes[0].FreedBytes != 5 {
		t.Errorf("prune %v, want both nodes asked with all", pr)
	}

	du, err := c.client.DiskUsage(ctx, &berthv1.DiskUsageRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(du.Nodes) != 2 || du.Nodes[0].Images != 2 || du.Nodes[0].NodeName == "" {
		t.Errorf("disk usage %v, want both nodes, named", du)
	}

	for _, req := range []*berthv1.RemoveImageRequest{{}, {Images: []string{"Bad Name"}}, {Images: []string{"web:1"}, NodeId: "nope"}} {
		if _, err := c.client.RemoveImage(ctx, req); status.Code(err) != codes.InvalidArgument && status.Code(err) != codes.NotFound {
			t.Errorf("RemoveImage(%v) = %v, want InvalidArgument or NotFound", req, err)
		}
	}
}
