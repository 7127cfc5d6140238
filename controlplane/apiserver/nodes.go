package apiserver

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// NodeClients dials agents' NodeService with the server's certificate,
// keeping one connection per node.
type NodeClients struct {
	creds *identity.Live

	mu    sync.Mutex
	conns map[string]*nodeConn
	// retired are connections to nodes' former addresses, closed after
	// replacedConnGrace or by Close.
	retired []*grpc.ClientConn
}

type nodeConn struct {
	address string
	conn    *grpc.ClientConn
}

// replacedConnGrace is how long the connection to a node's former
// address stays open for the calls still using it.
const replacedConnGrace = time.Minute

// listImagesNodeTimeout bounds the wait for one node's image list.
const listImagesNodeTimeout = 10 * time.Second

// NewNodeClients returns a dialer using the server's credentials: the
// certificate and trust bundle they hold at each handshake, so renewals
// and CA rotations reach new connections.
func NewNodeClients(creds *identity.Live) *NodeClients {
	return &NodeClients{creds: creds, conns: map[string]*nodeConn{}}
}

// Client returns a NodeService client for n.
func (c *NodeClients) Client(n *berthv1.Node) (berthv1.NodeServiceClient, error) {
	id := n.GetMeta().GetId()
	c.mu.Lock()
	defer c.mu.Unlock()
	if nc := c.conns[id]; nc != nil && nc.address == n.Address {
		return berthv1.NewNodeServiceClient(nc.conn), nil
	} else if nc != nil {
		// The node moved (its agent restarted elsewhere): calls still
		// running on the old connection end on their own before it is
		// closed, instead of failing with a closed connection.
		old := nc.conn
		c.retired = append(c.retired, old)
		time.AfterFunc(replacedConnGrace, func() {
			c.mu.Lock()
			c.retired = slices.DeleteFunc(c.retired, func(conn *grpc.ClientConn) bool { return conn == old })
			c.mu.Unlock()
			old.Close()
		})
		delete(c.conns, id)
	}
	if n.Address == "" {
		return nil, fmt.Errorf("node %s has no address", n.Name)
	}
	tlsCfg := c.creds.ClientTLS(id)
	conn, err := grpc.NewClient(n.Address, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		// Connections to many nodes, mostly idle, share write buffers
		// and read straight from TLS (see the server's options).
		grpc.WithSharedWriteBuffer(true), grpc.WithReadBufferSize(0))
	if err != nil {
		return nil, fmt.Errorf("node %s at %s: %w", n.Name, n.Address, err)
	}
	c.conns[id] = &nodeConn{address: n.Address, conn: conn}
	return berthv1.NewNodeServiceClient(conn), nil
}

// Close closes every connection.
func (c *NodeClients) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, nc := range c.conns {
		nc.conn.Close()
		delete(c.conns, id)
	}
	for _, conn := range c.retired {
		conn.Close()
	}
	c.retired = nil
}

// targetNodes returns the ready nodes among ids (all ready nodes if empty),
// or an error naming an unknown one.
func (s *Server) targetNodes(ids []string) ([]*berthv1.Node, error) {
	var out []*berthv1.Node
	if len(ids) == 0 {
		for _, n := range s.cfg.Cache.Nodes() {
			if n.Status == berthv1.NodeStatus_NODE_STATUS_READY {
				out = append(out, n)
			}
		}
		if len(out) == 0 {
			return nil, status.Error(codes.FailedPrecondition, "no node is ready: start an agent (`berth agent --join ...`)")
		}
		return out, nil
	}
	for _, id := range ids {
		n, ok := s.findNode(id)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", id)
		}
		out = append(out, n)
	}
	return out, nil
}

// findNode finds a node by id or name.
func (s *Server) findNode(idOrName string) (*berthv1.Node, bool) {
	if n, ok := s.cfg.Cache.Node(idOrName); ok {
		return n, true
	}
	for _, n := range s.cfg.Cache.Nodes() {
		if n.Name == idOrName {
			return n, true
		}
	}
	return nil, false
}

// ImportImage spools the uploaded archive to a temporary file, then loads
// it into every target node at once.
func (s *Server) ImportImage(stream berthv1.ClusterService_ImportImageServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	header := first.GetHeader()
	if header == nil {
		return status.Error(codes.InvalidArgument, "image import must start with a header")
	}
	nodes, err := s.targetNodes(header.NodeIds)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "berth-import-*.tar")
	if err != nil {
		return status.Errorf(codes.Internal, "spooling the archive: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(msg.GetChunk()); err != nil {
			return status.Errorf(codes.Internal, "spooling the archive: %v", err)
		}
	}
	results := make([]*berthv1.NodeImportResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.importTo(stream.Context(), n, f.Name())
		}()
	}
	wg.Wait()
	s.recordImport(stream.Context(), results)
	return stream.SendAndClose(&berthv1.ImportImageResponse{Results: results})
}

const chunkSize = 1 << 20

func (s *Server) importTo(ctx context.Context, n *berthv1.Node, path string) *berthv1.NodeImportResult {
	fail := func(err error) *berthv1.NodeImportResult {
		return &berthv1.NodeImportResult{NodeId: n.GetMeta().GetId(), NodeName: n.Name, Error: err.Error()}
	}
	cli, err := s.cfg.Nodes.Client(n)
	if err != nil {
		return fail(err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	up, err := cli.ImportImage(ctx)
	if err != nil {
		return fail(err)
	}
	buf := make([]byte, chunkSize)
	for {
		k, err := f.Read(buf)
		if k > 0 {
			if err := up.Send(&berthv1.NodeImportImageRequest{Chunk: buf[:k]}); err != nil {
				_, rerr := up.CloseAndRecv()
				return fail(fmt.Errorf("sending to node: %w", errorOr(rerr, err)))
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
	}
	res, err := up.CloseAndRecv()
	if err != nil {
		return fail(err)
	}
	res.NodeId, res.NodeName = n.GetMeta().GetId(), n.Name
	return res
}

func errorOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// ListImages asks nodes for their images.
func (s *Server) ListImages(ctx context.Context, req *berthv1.ListImagesRequest) (*berthv1.ListImagesResponse, error) {
	var ids []string
	if req.NodeId != "" {
		ids = []string{req.NodeId}
	}
	nodes, err := s.targetNodes(ids)
	if err != nil {
		return nil, err
	}
	resp := &berthv1.ListImagesResponse{Nodes: make([]*berthv1.NodeImages, len(nodes))}
	errs := s.eachNode(ctx, nodes, listImagesNodeTimeout, func(ctx context.Context, i int, cli berthv1.NodeServiceClient) error {
		got, err := cli.ListImages(ctx, &berthv1.ListImagesRequest{})
		if err == nil {
			resp.Nodes[i] = &berthv1.NodeImages{Images: got.Images}
		}
		return err
	})
	for i, n := range nodes {
		out := resp.Nodes[i]
		if out == nil {
			out = &berthv1.NodeImages{Error: errs[i].Error()}
		}
		out.NodeId, out.NodeName = n.GetMeta().GetId(), n.Name
		resp.Nodes[i] = out
	}
	return resp, nil
}
