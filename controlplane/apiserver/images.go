package apiserver

import (
	"errors"
	"fmt"
	"io"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// normalizedImage checks an image reference from a request and returns
// its full form.
func normalizedImage(image string) (string, error) {
	if image == "" {
		return "", status.Error(codes.InvalidArgument, "the image is missing; name one, e.g. registry.example.com/app:1")
	}
	full, err := imageref.Normalize(image)
	if err != nil {
		return "", status.Errorf(codes.InvalidArgument, "%v; write it as [registry/]name[:tag]", err)
	}
	return full, nil
}

// holds reports whether n's image store has image (in its full form).
func holds(n *berthv1.Node, full string) bool {
	for _, img := range n.Images {
		if got, err := imageref.Normalize(img); err == nil && got == full {
			return true
		}
	}
	return false
}

// holdsDigest reports whether n says it holds manifest digest dgst.
func holdsDigest(n *berthv1.Node, dgst string) bool {
	for _, d := range n.ImageDigests {
		if d == dgst {
			return true
		}
	}
	return false
}

// imageSource is where node self gets image: the registry's credential
// and insecure setting and, when the image is pinned to digest dgst, the
// ready peers that hold that digest with a pull grant for self, which the
// agent tries first. A tag alone gets no peers: what a node holds under a
// tag is its own claim.
func (s *Server) imageSource(image, dgst, self string) *berthv1.ImageSource {
	src := &berthv1.ImageSource{Image: image}
	if s.cfg.Registries != nil {
		if auth := s.cfg.Registries.ImageAuth(image); auth != nil {
			src = proto.Clone(auth).(*berthv1.ImageSource)
		}
	}
	if dgst == "" || s.cfg.Authority == nil {
		return src
	}
	for _, n := range s.cfg.Cache.Nodes() {
		if n.GetMeta().GetId() != self && n.Status == berthv1.NodeStatus_NODE_STATUS_READY && n.ContentAddress != "" && holdsDigest(n, dgst) {
			src.Peers = append(src.Peers, n.ContentAddress)
		}
	}
	if len(src.Peers) > 0 {
		g, err := s.cfg.Authority.PullGrant(self, dgst)
		if err != nil {
			s.log.Warn("signing a pull grant; the node pulls from the registry", "image", image, "err", err)
			src.Peers = nil
			return src
		}
		src.PullGrants = [][]byte{g}
	}
	return src
}

// progressSender serializes the Sends of several goroutines on one
// stream, which allows one sender at a time.
type progressSender struct {
	mu     sync.Mutex
	stream interface {
		Send(*berthv1.ImageProgress) error
	}
}

func (p *progressSender) send(n *berthv1.Node, msg *berthv1.ImageProgress) error {
	msg.NodeId, msg.NodeName = n.GetMeta().GetId(), n.Name
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stream.Send(msg)
}

// progressStream is a node's stream of ImageProgress.
type progressStream interface {
	Recv() (*berthv1.ImageProgress, error)
}

// relay copies one node's progress stream to the client's, closing it
// with a done message that carries the error if the node's stream ended
// in one. It returns the node's error.
func relay(p *progressSender, n *berthv1.Node, image string, open func() (progressStream, error)) error {
	fail := func(err error) error {
		msg := status.Convert(err).Message()
		p.send(n, &berthv1.ImageProgress{Image: image, Done: true, Error: msg})
		return fmt.Errorf("node %s: %s", n.Name, msg)
	}
	in, err := open()
	if err != nil {
		return fail(err)
	}
	sawDone := false
	for {
		msg, err := in.Recv()
		if err == io.EOF {
			if !sawDone {
				p.send(n, &berthv1.ImageProgress{Image: image, Done: true})
			}
			return nil
		}
		if err != nil {
			return fail(err)
		}
		sawDone = sawDone || msg.Done
		if err := p.send(n, msg); err != nil {
			return err
		}
		if msg.Done && msg.Error != "" {
			return fmt.Errorf("node %s: %s", n.Name, msg.Error)
		}
	}
}

// PullImage pulls an image on the requested nodes (every ready node when
// none is named) at once, each from the peers that hold it or else from
// its registry with the stored credential, and merges their progress.
// Every node's stream ends with a done message; the call fails when any
// node's pull did.
func (s *Server) PullImage(req *berthv1.PullImageRequest, stream berthv1.ClusterService_PullImageServer) error {
	if _, err := normalizedImage(req.Image); err != nil {
		return err
	}
	nodes, err := s.targetNodes(req.NodeIds)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	// Pinned, the pull may come from peers; else each node pulls the tag
	// from its registry.
	dgst, err := s.resolveDigest(ctx, req.Image)
	if err != nil {
		s.log.Info("image pull: not pinned; the nodes pull the tag from its registry", "image", req.Image, "err", err)
		dgst = ""
	}
	out := &progressSender{stream: stream}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = relay(out, n, req.Image, func() (progressStream, error) {
				client, err := s.cfg.Nodes.Client(n)
				if err != nil {
					return nil, err
				}
				src := s.imageSource(req.Image, dgst, n.GetMeta().GetId())
				return client.PullImage(ctx, &berthv1.NodePullImageRequest{Image: req.Image, Source: src, Digest: dgst})
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		s.log.Warn("image pull failed", "image", req.Image, "failed_nodes", failed, "err", err)
		return status.Errorf(codes.Aborted, "pull of %s failed on %d of %d nodes: %v", req.Image, failed, len(nodes), err)
	}
	s.log.Info("image pulled", "image", req.Image, "nodes", len(nodes))
	return nil
}

// pushNode is the node a push goes from: the one named, or a ready node
// that holds the image.
func (s *Server) pushNode(node, full string) (*berthv1.Node, error) {
	if node != "" {
		n, ok := s.findNode(node)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", node)
		}
		return n, nil
	}
	for _, n := range s.cfg.Cache.Nodes() {
		if n.Status == berthv1.NodeStatus_NODE_STATUS_READY && holds(n, full) {
			return n, nil
		}
	}
	return nil, status.Errorf(codes.FailedPrecondition, "no ready node holds %s; build or import it first (`berth image ls` lists the nodes' images), or name a node with --node", full)
}

// PushImage pushes an image from one node to its registry, with the
// stored credential, and relays the node's progress.
func (s *Server) PushImage(req *berthv1.PushImageRequest, stream berthv1.ClusterService_PushImageServer) error {
	full, err := normalizedImage(req.Image)
	if err != nil {
		return err
	}
	n, err := s.pushNode(req.Node, full)
	if err != nil {
		return err
	}
	src := &berthv1.ImageSource{Image: req.Image}
	if s.cfg.Registries != nil {
		if auth := s.cfg.Registries.ImageAuth(req.Image); auth != nil {
			src = auth
		}
	}
	ctx := stream.Context()
	err = relay(&progressSender{stream: stream}, n, req.Image, func() (progressStream, error) {
		client, err := s.cfg.Nodes.Client(n)
		if err != nil {
			return nil, err
		}
		return client.PushImage(ctx, &berthv1.NodePushImageRequest{Image: req.Image, Source: src})
	})
	if err != nil {
		s.log.Warn("image push failed", "image", req.Image, "node", n.Name, "err", err)
		return status.Errorf(codes.Aborted, "push of %s failed: %v", req.Image, err)
	}
	s.log.Info("image pushed", "image", req.Image, "node", n.Name)
	return nil
}
