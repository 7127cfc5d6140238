package apiserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// memCA is an in-memory ca.Persistence, enough to open an Authority.
type memCA struct {
	mu sync.Mutex
	ca *berthv1.ClusterCA
}

func (m *memCA) LoadCA(context.Context) (*berthv1.ClusterCA, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ca, nil
}

func (m *memCA) CreateCA(_ context.Context, rec *berthv1.ClusterCA) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ca != nil {
		return ca.ErrExists
	}
	m.ca = rec
	return nil
}

func (m *memCA) SwapCA(_ context.Context, old, next *berthv1.ClusterCA) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !proto.Equal(m.ca, old) {
		return ca.ErrChanged
	}
	m.ca = next
	return nil
}

func (m *memCA) PutToken(context.Context, *berthv1.JoinTokenRecord) error       { return nil }
func (m *memCA) ListTokens(context.Context) ([]*berthv1.JoinTokenRecord, error) { return nil, nil }
func (m *memCA) DeleteToken(context.Context, string) error                      { return nil }

var _ ca.Persistence = (*memCA)(nil)

// fakeBuilder is a NodeService whose Build records what it gets, then
// answers with events, or fails with err once the context is read.
type fakeBuilder struct {
	berthv1.UnimplementedNodeServiceServer
	events []*berthv1.BuildEvent
	err    error

	mu      sync.Mutex
	header  *berthv1.BuildHeader
	context []byte
}

// Sbom answers as a node that read one package of the image built.
func (f *fakeBuilder) Sbom(ctx context.Context, req *berthv1.NodeSbomRequest) (*berthv1.NodeSbomResponse, error) {
	return &berthv1.NodeSbomResponse{Sbom: &berthv1.Sbom{Image: req.Image, Digest: req.Digest,
		Packages: []*berthv1.SbomPackage{{Name: "zlib", Version: "1.3", Ecosystem: "Debian:12"}}}}, nil
}

func (f *fakeBuilder) Build(stream grpc.BidiStreamingServer[berthv1.BuildRequest, berthv1.BuildEvent]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		buf.Write(msg.GetContextChunk())
	}
	f.mu.Lock()
	f.header, f.context = first.GetHeader(), buf.Bytes()
	f.mu.Unlock()
	for _, ev := range f.events {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return f.err
}

// buildCluster is an API server with a CA, whose nodes are fake builders
// served over the cluster's mTLS on loopback, and a client of its Build.
type buildCluster struct {
	t      *testing.T
	srv    *Server
	auth   *ca.Authority
	client berthv1.ClusterServiceClient
}

func newBuildCluster(t *testing.T) *buildCluster {
	t.Helper()
	auth, err := ca.Open(t.Context(), &memCA{}, testKEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := auth.IssueServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.New(t)
	creds, err := identity.NewLive(cert, key, auth.CACertPEM())
	if err != nil {
		t.Fatal(err)
	}
	nodes := NewNodeClients(creds)
	t.Cleanup(nodes.Close)
	srv := New(Config{Store: st, Cache: storetest.NewCache(t, st), Nodes: nodes, Log: slog.New(slog.DiscardHandler)})

	gs := grpc.NewServer()
	berthv1.RegisterClusterServiceServer(gs, srv)
	addr := serveGRPC(t, gs)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &buildCluster{t: t, srv: srv, auth: auth, client: berthv1.NewClusterServiceClient(conn)}
}

// serveGRPC serves gs on a loopback port until the test ends.
func serveGRPC(t *testing.T, gs *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return lis.Addr().String()
}

// addNodeService registers a ready, active node id named name, served by
// svc over the cluster's mTLS.
func (c *buildCluster) addNodeService(id, name string, svc berthv1.NodeServiceServer) {
	c.t.Helper()
	keyPEM, csrPEM, err := identity.NewKeyAndCSR(id)
	if err != nil {
		c.t.Fatal(err)
	}
	certPEM, err := c.auth.SignNode(csrPEM, id)
	if err != nil {
		c.t.Fatal(err)
	}
	tlsCfg, err := identity.ServerTLS(certPEM, keyPEM, c.auth.CACertPEM())
	if err != nil {
		c.t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	berthv1.RegisterNodeServiceServer(gs, svc)
	addNode(c.t, c.srv, &berthv1.Node{
		Meta: &berthv1.Meta{Id: id}, Name: name, Address: serveGRPC(c.t, gs),
		Status:       berthv1.NodeStatus_NODE_STATUS_READY,
		Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
	})
}

// build runs one build through the API: the header, then context in
// chunks of 3 bytes; it returns the events and the call's error.
func (c *buildCluster) build(header *berthv1.BuildHeader, context []byte) ([]*berthv1.BuildEvent, error) {
	c.t.Helper()
	stream, err := c.client.Build(c.t.Context())
	if err != nil {
		c.t.Fatal(err)
	}
	if err := stream.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_Header{Header: header}}); err != nil {
		c.t.Fatal(err)
	}
	for len(context) > 0 {
		n := min(3, len(context))
		if err := stream.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_ContextChunk{ContextChunk: context[:n]}}); err != nil {
			break // the server ended the call: Recv tells why
		}
		context = context[n:]
	}
	if err := stream.CloseSend(); err != nil {
		c.t.Fatal(err)
	}
	var events []*berthv1.BuildEvent
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
}

func TestBuildRelaysToTheNode(t *testing.T) {
	c := newBuildCluster(t)
	status1 := []byte("buildkit status bytes")
	f := &fakeBuilder{events: []*berthv1.BuildEvent{
		{Event: &berthv1.BuildEvent_Status{Status: status1}},
		{Event: &berthv1.BuildEvent_Result{Result: &berthv1.BuildResult{Image: "web:1", Digest: "sha256:abc"}}},
	}}
	c.addNodeService("n1", "alpha", f)
	c.addNodeService("n2", "beta", &fakeBuilder{err: status.Error(codes.Internal, "wrong node")})

	header := &berthv1.BuildHeader{
		Tags: []string{"web:1"}, Dockerfile: "build/Dockerfile", BuildArgs: map[string]string{"V": "1"},
		Target: "final", NoCache: true, Node: "alpha",
	}
	tarBytes := []byte("a context tar of some length")
	events, err := c.build(header, tarBytes)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if len(events) != 2 || !bytes.Equal(events[0].GetStatus(), status1) {
		t.Fatalf("events = %v, want the status then the result", events)
	}
	want := &berthv1.BuildResult{NodeId: "n1", NodeName: "alpha", Image: "web:1", Digest: "sha256:abc"}
	got := proto.CloneOf(events[1].GetResult())
	scan := got.GetScan()
	got.Scan = nil
	if !proto.Equal(got, want) {
		t.Errorf("result = %v, want %v (node filled in)", got, want)
	}
	// The build's result is scanned on the node that built it.
	if scan.GetDigest() != "sha256:abc" || scan.GetPackages() != 1 || len(scan.GetCounts()) != 0 {
		t.Errorf("scan of the build = %v, want one package of sha256:abc and no findings", scan)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	wantHeader := proto.CloneOf(header)
	wantHeader.Node = ""
	if !proto.Equal(f.header, wantHeader) {
		t.Errorf("node got header %v, want %v", f.header, wantHeader)
	}
	if !bytes.Equal(f.context, tarBytes) {
		t.Errorf("node got context %q, want %q", f.context, tarBytes)
	}
}

func TestBuildKeepsTheNodesResultAndErrors(t *testing.T) {
	c := newBuildCluster(t)
	c.addNodeService("n1", "alpha", &fakeBuilder{events: []*berthv1.BuildEvent{
		{Event: &berthv1.BuildEvent_Result{Result: &berthv1.BuildResult{NodeId: "self", NodeName: "me", Digest: "sha256:1"}}},
	}})
	events, err := c.build(&berthv1.BuildHeader{Node: "n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := events[len(events)-1].GetResult(); r.GetNodeId() != "self" || r.GetNodeName() != "me" {
		t.Errorf("result = %v, want the node's own id and name kept", r)
	}

	const msg = "failed to solve: dockerfile parse error on line 3: unknown instruction: FROMM"
	c.addNodeService("n2", "beta", &fakeBuilder{
		events: []*berthv1.BuildEvent{{Event: &berthv1.BuildEvent_Status{Status: []byte("x")}}},
		err:    status.Error(codes.InvalidArgument, msg),
	})
	events, err = c.build(&berthv1.BuildHeader{Node: "beta"}, []byte("tar"))
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || st.Message() != msg {
		t.Errorf("error = %v, want the node's: %s", err, msg)
	}
	if len(events) != 1 {
		t.Errorf("events = %v, want the status sent before the failure", events)
	}
}

func TestBuildRefusals(t *testing.T) {
	c := newBuildCluster(t)
	addNode(t, c.srv, &berthv1.Node{Meta: &berthv1.Meta{Id: "n9"}, Name: "gone", Status: berthv1.NodeStatus_NODE_STATUS_DOWN})
	tests := []struct {
		name   string
		header *berthv1.BuildHeader
		code   codes.Code
	}{
		{"unknown node", &berthv1.BuildHeader{Node: "nope"}, codes.NotFound},
		{"node down", &berthv1.BuildHeader{Node: "gone"}, codes.FailedPrecondition},
		{"no ready node", &berthv1.BuildHeader{}, codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.build(tt.header, []byte("tar"))
			if status.Code(err) != tt.code {
				t.Errorf("error = %v, want code %v", err, tt.code)
			}
		})
	}

	stream, err := c.client.Build(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_ContextChunk{ContextChunk: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("context before header: error = %v, want InvalidArgument", err)
	}
}

func TestBuildNodeChoice(t *testing.T) {
	const gib = 1 << 30
	ready, active := berthv1.NodeStatus_NODE_STATUS_READY, berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	node := func(id, name string, mem int64, st berthv1.NodeStatus, av berthv1.NodeAvailability) *berthv1.Node {
		return &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: name, Status: st, Availability: av,
			Capacity: &berthv1.Resources{MemoryBytes: mem}}
	}
	task := func(id, nodeID string, mem int64, state berthv1.TaskState) *berthv1.Task {
		return &berthv1.Task{Meta: &berthv1.Meta{Id: id}, Namespace: "default", App: "a", Service: "s", NodeId: nodeID,
			Spec:   &berthv1.ServiceSpec{Reservations: &berthv1.Resources{MemoryBytes: mem}},
			Status: &berthv1.TaskStatus{State: state}}
	}
	tests := []struct {
		name  string
		nodes []*berthv1.Node
		tasks []*berthv1.Task
		want  string
	}{
		{"most free memory", []*berthv1.Node{node("n1", "alpha", 2*gib, ready, active), node("n2", "beta", 4*gib, ready, active)}, nil, "beta"},
		{"reservations count", []*berthv1.Node{node("n1", "alpha", 2*gib, ready, active), node("n2", "beta", 4*gib, ready, active)},
			[]*berthv1.Task{task("t1", "n2", 3*gib, berthv1.TaskState_TASK_STATE_RUNNING)}, "alpha"},
		{"finished tasks hold nothing", []*berthv1.Node{node("n1", "alpha", 2*gib, ready, active), node("n2", "beta", 4*gib, ready, active)},
			[]*berthv1.Task{task("t1", "n2", 3*gib, berthv1.TaskState_TASK_STATE_COMPLETE)}, "beta"},
		{"equal: first by name", []*berthv1.Node{node("n2", "beta", gib, ready, active), node("n1", "alpha", gib, ready, active)}, nil, "alpha"},
		{"only ready and active", []*berthv1.Node{
			node("n1", "alpha", gib, ready, active),
			node("n2", "beta", 8*gib, ready, berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN),
			node("n3", "gamma", 8*gib, berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, active),
		}, nil, "alpha"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			for _, n := range tt.nodes {
				addNode(t, s, n)
			}
			var txn store.Txn
			for _, tk := range tt.tasks {
				txn.Create(store.TaskKey(tk.Namespace, tk.App, tk.Service, tk.GetMeta().GetId()), tk)
			}
			if len(tt.tasks) > 0 {
				rev, err := s.cfg.Store.Commit(t.Context(), &txn)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.cfg.Cache.WaitRevision(t.Context(), rev); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.buildNode("")
			if err != nil {
				t.Fatal(err)
			}
			if n.Name != tt.want {
				t.Errorf("chose %s, want %s", n.Name, tt.want)
			}
		})
	}
}
