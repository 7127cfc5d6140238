package apiserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
	"github.com/berthproject/berth/scheduler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Build relays a build to one node's NodeService.Build: the header (with
// the node cleared: it is read here only), then the context chunks as they
// come, while the node's progress and result stream back. The node's errors
// reach the caller with their code and message unchanged, so a failed
// build reads as BuildKit wrote it.
func (s *Server) Build(stream berthv1.ClusterService_BuildServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	header := first.GetHeader()
	if header == nil {
		return status.Error(codes.InvalidArgument, "a build must start with its header")
	}
	node, err := s.buildNode(header.Node)
	if err != nil {
		return err
	}
	cli, err := s.cfg.Nodes.Client(node)
	if err != nil {
		return status.Errorf(codes.Unavailable, "build on node %s: %v", node.Name, err)
	}
	// Canceled when the client's side fails, so the node stops waiting
	// for the rest of the context.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	up, err := cli.Build(ctx)
	if err != nil {
		return nodeError(node, err)
	}
	fwd := &berthv1.BuildHeader{
		Tags:              header.Tags,
		Dockerfile:        header.Dockerfile,
		DockerfileContent: header.DockerfileContent,
		BuildArgs:         header.BuildArgs,
		Target:            header.Target,
		NoCache:           header.NoCache,
		GitContext:        header.GitContext,
	}
	s.log.Info("build", "node", node.Name, "tags", header.Tags)

	// The context goes up in its own goroutine while events come down
	// here. It always ends: the client closes its side when the context is
	// sent, a node that stopped makes each Send fail, and a client that
	// went away cancels the call.
	sent := make(chan error, 1)
	go func() {
		err := relayContext(stream, up, fwd)
		if err != nil {
			cancel()
		}
		sent <- err
	}()

	var downErr, nodeErr error
	for {
		ev, err := up.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				nodeErr = err
			}
			break
		}
		if res := ev.GetResult(); res != nil {
			res.NodeId = cmp.Or(res.NodeId, node.GetMeta().GetId())
			res.NodeName = cmp.Or(res.NodeName, node.Name)
			s.recordBuild(ctx, node.GetMeta().GetId(), header.Tags, res)
			s.scanBuilt(ctx, node, res)
		}
		if err := stream.Send(ev); err != nil {
			downErr = err
			break
		}
	}
	upErr := <-sent
	switch {
	case downErr != nil:
		return downErr
	case upErr != nil:
		// The relay fails only on the client's side (a node that stops
		// reading is not an error there), and then the node's call was
		// canceled: the client's error is the cause.
		return upErr
	case nodeErr != nil:
		return nodeError(node, nodeErr)
	}
	return nil
}

// relayContext sends the header, then every chunk the client sends, to the
// node, and closes the node's sending side at the client's end. A node
// that stops reading (io.EOF on Send) has ended the call; its reason comes
// with its Recv, so that is not an error here.
func relayContext(client berthv1.ClusterService_BuildServer, node berthv1.NodeService_BuildClient, header *berthv1.BuildHeader) error {
	if err := node.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_Header{Header: header}}); err != nil {
		return nil
	}
	for {
		msg, err := client.Recv()
		if errors.Is(err, io.EOF) {
			return node.CloseSend()
		}
		if err != nil {
			return err
		}
		chunk := msg.GetContextChunk()
		if chunk == nil {
			return status.Error(codes.InvalidArgument, "a build sends one header, then only context chunks")
		}
		if err := node.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_ContextChunk{ContextChunk: chunk}}); err != nil {
			return nil
		}
	}
}

// buildNode is the node a build runs on: the one named (by name or ID),
// which must be ready; else the ready, active node with the most memory
// not reserved by its tasks, the first by name among equals. Memory is
// what a build is short of first, and reservations are what the control
// plane knows of it.
func (s *Server) buildNode(ref string) (*berthv1.Node, error) {
	if ref != "" {
		n, ok := s.findNode(ref)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", ref)
		}
		if n.Status != berthv1.NodeStatus_NODE_STATUS_READY {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s, not ready: build on another node (--node), or without --node to let the cluster pick", n.Name, nodeStatusWord(n.Status))
		}
		if !nodestate.Ready(n) {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s: build on another node (--node), or without --node to let the cluster pick", n.Name, nodestate.Words(n))
		}
		return n, nil
	}
	var best *berthv1.Node
	var bestFree int64
	nodes := s.cfg.Cache.Nodes()
	slices.SortFunc(nodes, func(a, b *berthv1.Node) int { return cmp.Compare(a.Name, b.Name) })
	for _, n := range nodes {
		if !nodestate.Ready(n) || n.Availability != berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE {
			continue
		}
		free := n.GetCapacity().GetMemoryBytes()
		for _, t := range s.cfg.Cache.NodeTasks(n.GetMeta().GetId()) {
			if scheduler.Holds(t) {
				free -= max(t.GetSpec().GetReservations().GetMemoryBytes(), 0)
			}
		}
		if best == nil || free > bestFree {
			best, bestFree = n, free
		}
	}
	if best == nil {
		return nil, status.Error(codes.FailedPrecondition, "no node is ready and active to build on: start an agent (`berth agent --join ...`), or make one active (`berth node activate NODE`)")
	}
	return best, nil
}

// nodeStatusWord is a node status as users read it: "down", "unreachable".
func nodeStatusWord(st berthv1.NodeStatus) string {
	switch st {
	case berthv1.NodeStatus_NODE_STATUS_READY:
		return "ready"
	case berthv1.NodeStatus_NODE_STATUS_UNREACHABLE:
		return "unreachable"
	case berthv1.NodeStatus_NODE_STATUS_DOWN:
		return "down"
	}
	return "not yet registered"
}

// nodeError passes a node's gRPC error on with its code and message; an
// error without a status (the connection failed before any) becomes
// Unavailable, naming the node.
func nodeError(n *berthv1.Node, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("build on node %s: %v", n.Name, err))
}
