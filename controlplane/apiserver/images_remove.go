package apiserver

import (
	"context"
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// removeImagesNodeTimeout bounds one node's removal or prune.
	removeImagesNodeTimeout = time.Minute
	// diskUsageNodeTimeout bounds one node's measure: volumes are walked
	// file by file.
	diskUsageNodeTimeout = 30 * time.Second
)

// RemoveImage removes images from the nodes' stores (one node's with
// node_id, else every ready node's). Each node keeps an image a container
// of a task uses, naming the task, unless force and none of them runs.
func (s *Server) RemoveImage(ctx context.Context, req *berthv1.RemoveImageRequest) (*berthv1.RemoveImagesResponse, error) {
	if len(req.Images) == 0 {
		return nil, status.Error(codes.InvalidArgument, "name at least one image to remove; `berth image ls` lists them")
	}
	images := make([]string, len(req.Images))
	for i, im := range req.Images {
		full, err := normalizedImage(im)
		if err != nil {
			return nil, err
		}
		images[i] = full
	}
	return s.removeOnNodes(ctx, req.NodeId, func(ctx context.Context, cli berthv1.NodeServiceClient) (*berthv1.NodeImageRemoval, error) {
		return cli.RemoveImages(ctx, &berthv1.NodeRemoveImagesRequest{Images: images, Force: req.Force})
	})
}

// PruneImages removes the images no container uses from the nodes'
// stores: the dangling ones, or every unused one with all.
func (s *Server) PruneImages(ctx context.Context, req *berthv1.PruneImagesRequest) (*berthv1.RemoveImagesResponse, error) {
	return s.removeOnNodes(ctx, req.NodeId, func(ctx context.Context, cli berthv1.NodeServiceClient) (*berthv1.NodeImageRemoval, error) {
		return cli.PruneImages(ctx, &berthv1.NodePruneImagesRequest{All: req.All})
	})
}

// removeOnNodes runs a removal on one node (nodeID) or every ready node,
// and names the tasks of the images kept.
func (s *Server) removeOnNodes(ctx context.Context, nodeID string, remove func(context.Context, berthv1.NodeServiceClient) (*berthv1.NodeImageRemoval, error)) (*berthv1.RemoveImagesResponse, error) {
	nodes, err := s.targetNodes(nodeIDs(nodeID))
	if err != nil {
		return nil, err
	}
	resp := &berthv1.RemoveImagesResponse{Nodes: make([]*berthv1.NodeImageRemoval, len(nodes))}
	errs := s.eachNode(ctx, nodes, removeImagesNodeTimeout, func(ctx context.Context, i int, cli berthv1.NodeServiceClient) error {
		got, err := remove(ctx, cli)
		resp.Nodes[i] = got
		return err
	})
	names := s.taskNames()
	for i, n := range nodes {
		out := resp.Nodes[i]
		if errs[i] != nil || out == nil {
			out = &berthv1.NodeImageRemoval{Error: status.Convert(errs[i]).Message()}
		}
		out.NodeId, out.NodeName = n.GetMeta().GetId(), n.Name
		for _, k := range out.Kept {
			k.Tasks = k.Tasks[:0]
			for _, id := range k.TaskIds {
				name, ok := names[id]
				if !ok {
					name = "task " + id
				}
				k.Tasks = append(k.Tasks, name)
			}
		}
		resp.Nodes[i] = out
	}
	return resp, nil
}

// DiskUsage asks each node (or the one of node_id) what it holds on disk.
func (s *Server) DiskUsage(ctx context.Context, req *berthv1.DiskUsageRequest) (*berthv1.DiskUsageResponse, error) {
	nodes, err := s.targetNodes(nodeIDs(req.NodeId))
	if err != nil {
		return nil, err
	}
	resp := &berthv1.DiskUsageResponse{Nodes: make([]*berthv1.NodeDiskUsage, len(nodes))}
	errs := s.eachNode(ctx, nodes, diskUsageNodeTimeout, func(ctx context.Context, i int, cli berthv1.NodeServiceClient) error {
		got, err := cli.DiskUsage(ctx, &berthv1.NodeDiskUsageRequest{})
		resp.Nodes[i] = got
		return err
	})
	for i, n := range nodes {
		out := resp.Nodes[i]
		if errs[i] != nil || out == nil {
			out = &berthv1.NodeDiskUsage{Error: status.Convert(errs[i]).Message()}
		}
		out.NodeId, out.NodeName = n.GetMeta().GetId(), n.Name
		resp.Nodes[i] = out
	}
	return resp, nil
}

// nodeIDs is the target of a request with an optional node: none for
// every ready node.
func nodeIDs(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}

// taskNames names every task by its ID as people know it:
// APP/SERVICE.SLOT, with its namespace first when it is not "default".
func (s *Server) taskNames() map[string]string {
	tasks := s.cfg.Cache.Tasks()
	names := make(map[string]string, len(tasks))
	for _, t := range tasks {
		name := fmt.Sprintf("%s/%s.%d", t.App, t.Service, t.Slot)
		if t.Namespace != "" && t.Namespace != "default" {
			name = t.Namespace + "/" + name
		}
		names[t.GetMeta().GetId()] = name
	}
	return names
}
