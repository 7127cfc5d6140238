package dispatcher

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// storeTokens keeps the CA in memory and the join tokens in the store,
// where Join takes their uses, as the server's persistence does.
type storeTokens struct {
	s  *store.Store
	mu sync.Mutex
	ca *berthv1.ClusterCA
}

func (p *storeTokens) LoadCA(context.Context) (*berthv1.ClusterCA, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ca, nil
}

func (p *storeTokens) CreateCA(_ context.Context, rec *berthv1.ClusterCA) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ca = proto.Clone(rec).(*berthv1.ClusterCA)
	return nil
}

func (p *storeTokens) SwapCA(_ context.Context, old, next *berthv1.ClusterCA) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !proto.Equal(p.ca, old) {
		return ca.ErrChanged
	}
	p.ca = proto.Clone(next).(*berthv1.ClusterCA)
	return nil
}

func (p *storeTokens) PutToken(ctx context.Context, rec *berthv1.JoinTokenRecord) error {
	var txn store.Txn
	txn.Put(store.TokenKey(rec.Id), rec)
	_, err := p.s.Commit(ctx, &txn)
	return err
}

func (p *storeTokens) ListTokens(ctx context.Context) ([]*berthv1.JoinTokenRecord, error) {
	toks, _, err := store.ListMessages(ctx, p.s, store.TokensPrefix, func() *berthv1.JoinTokenRecord { return &berthv1.JoinTokenRecord{} })
	return toks, err
}

func (p *storeTokens) DeleteToken(ctx context.Context, id string) error {
	var txn store.Txn
	txn.Delete(store.TokenKey(id), 0)
	_, err := p.s.Commit(ctx, &txn)
	return err
}

// joinFixture is a dispatcher with a real store, cache and CA.
type joinFixture struct {
	d     *Dispatcher
	s     *store.Store
	c     *store.Cache
	a     *ca.Authority
	token string
}

func newJoinFixture(t *testing.T) *joinFixture {
	t.Helper()
	s, c := newStoreAndCache(t)
	kek, err := seal.New(make([]byte, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.Open(context.Background(), &storeTokens{s: s}, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := NewSubnetPool("10.42.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.JoinToken(context.Background(), false, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Store: s, Cache: c, Authority: a, Subnets: pool, Log: slog.New(slog.DiscardHandler)})
	return &joinFixture{d: d, s: s, c: c, a: a, token: tok}
}

// join joins an agent named name with token and returns its node id and
// certificate.
func (f *joinFixture) join(t *testing.T, token, name string) (string, *x509.Certificate, error) {
	t.Helper()
	_, csr, err := identity.NewKeyAndCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.d.Join(context.Background(), &berthv1.JoinRequest{Token: token, NodeName: name, Csr: csr,
		Hostname: name + ".example", Labels: map[string]string{"zone": "eu"}})
	if err != nil {
		return "", nil, err
	}
	cert, err := parseCertificate(resp.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	return resp.NodeId, cert, nil
}

// session runs Session for an agent presenting cert, saying hello with
// desc, until it is refused or ctx ends.
func (f *joinFixture) session(ctx context.Context, cert *x509.Certificate, desc *berthv1.NodeDescription) error {
	ctx = grpcpeer.NewContext(ctx, &grpcpeer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}})
	return f.d.Session(&helloStream{ctx: ctx, hello: &berthv1.AgentMessage{Message: &berthv1.AgentMessage_Hello{Hello: &berthv1.AgentHello{Description: desc}}}})
}

// helloStream is an agent's stream that says hello, then listens.
type helloStream struct {
	berthv1.AgentService_SessionServer
	ctx   context.Context
	hello *berthv1.AgentMessage
	once  sync.Once
}

func (s *helloStream) Context() context.Context          { return s.ctx }
func (s *helloStream) SendHeader(metadata.MD) error      { return nil }
func (s *helloStream) SetTrailer(metadata.MD)            {}
func (s *helloStream) Send(*berthv1.ServerMessage) error { return nil }
func (s *helloStream) Recv() (*berthv1.AgentMessage, error) {
	var first bool
	s.once.Do(func() { first = true })
	if first {
		return s.hello, nil
	}
	<-s.ctx.Done()
	return nil, s.ctx.Err()
}

func wantCode(t *testing.T, what string, err error, code codes.Code, says ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
	for _, s := range says {
		if !strings.Contains(st.Message(), s) {
			t.Fatalf("%s: %q does not say %q", what, st.Message(), s)
		}
	}
}

// TestJoinCannotTakeOverANode: a join with the name of a node that is not
// connected used to get that node's id (and a certificate for it) whose
// session then cancelled the real node's. The name is now refused, and a
// certificate for the node's id that is not the one it joined with is
// refused a session, which leaves the real one open.
func TestJoinCannotTakeOverANode(t *testing.T) {
	f := newJoinFixture(t)
	id, cert, err := f.join(t, f.token, "beta")
	if err != nil {
		t.Fatal(err)
	}
	stored := &berthv1.Node{}
	if err := f.s.Get(context.Background(), store.NodeKey(id), stored); err != nil {
		t.Fatal(err)
	}
	if stored.Name != "beta" || stored.Hostname != "beta.example" || stored.Labels["zone"] != "eu" ||
		stored.CertificateSerial != identity.SerialHex(cert) || !stored.CertificateExpiresAt.AsTime().Equal(cert.NotAfter) {
		t.Fatalf("joined node = %v, want name, hostname, labels and certificate of the join", stored)
	}

	// beta is not connected: its name is still its own.
	_, _, err = f.join(t, f.token, "beta")
	wantCode(t, "a second join as beta", err, codes.AlreadyExists, "held by node "+id, "berth node rm beta")
	otherID, _, err := f.join(t, f.token, "gamma")
	if err != nil || otherID == id {
		t.Fatalf("a join as gamma = %q, %v; want a fresh node id", otherID, err)
	}

	// The real node is connected; an older certificate of its id (as
	// the takeover got) is refused and does not end its session.
	term, endTerm := context.WithCancel(context.Background())
	defer endTerm()
	f.d.startTerm(term)
	defer f.d.endTerm()
	real, closeReal := context.WithCancel(context.Background())
	defer closeReal()
	f.d.mu.Lock()
	f.d.sessions[id] = newSession(id, term, closeReal)
	f.d.mu.Unlock()
	_, csr, err := identity.NewKeyAndCSR("beta")
	if err != nil {
		t.Fatal(err)
	}
	oldPEM, err := f.a.SignNode(csr, id)
	if err != nil {
		t.Fatal(err)
	}
	old, err := parseCertificate(oldPEM)
	if err != nil {
		t.Fatal(err)
	}
	err = f.session(context.Background(), old, &berthv1.NodeDescription{Name: "beta"})
	wantCode(t, "a session with another certificate of beta's id", err, codes.PermissionDenied, "not the node's current one")
	if real.Err() != nil {
		t.Fatalf("the refused session ended the real node's session")
	}
}

// TestJoinTokenUses: a token made with --uses 1 admits one node, even to
// joins racing for it, and refuses the next with the numbers.
func TestJoinTokenUses(t *testing.T) {
	f := newJoinFixture(t)
	tok, _, err := f.a.JoinToken(context.Background(), false, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = f.join(t, tok, "racer-"+string(rune('a'+i)))
		}()
	}
	wg.Wait()
	admitted := 0
	for _, err := range errs {
		if err == nil {
			admitted++
			continue
		}
		wantCode(t, "a join past the token's uses", err, codes.PermissionDenied, "join token used up (1 of 1 uses)", "berth join-token --rotate --uses 1")
	}
	if admitted != 1 {
		t.Fatalf("%d joins admitted by a token of one use, want 1", admitted)
	}
	nodes, _, err := store.List(context.Background(), f.s, store.NodesPrefix, func() *berthv1.Node { return &berthv1.Node{} })
	if err != nil || len(nodes) != 1 {
		t.Fatalf("%d nodes stored (%v), want 1", len(nodes), err)
	}
}

// TestSessionRefusesRemovedAndRevoked: the agent of a node whose record is
// gone, or whose certificate is on the deny-list, gets no session.
func TestSessionRefusesRemovedAndRevoked(t *testing.T) {
	ctx := context.Background()
	f := newJoinFixture(t)
	term, endTerm := context.WithCancel(ctx)
	defer endTerm()
	f.d.startTerm(term)
	defer f.d.endTerm()

	_, revoked, err := f.join(t, f.token, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	var txn store.Txn
	serial := identity.SerialHex(revoked)
	txn.Put(store.RevokedKey(serial), &berthv1.RevokedCertificate{Serial: serial, Subject: "node/x", RevokedAt: timestamppb.Now()})
	if _, err := f.s.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	err = f.session(ctx, revoked, &berthv1.NodeDescription{Name: "revoked"})
	wantCode(t, "a session with a revoked certificate", err, codes.PermissionDenied, "was revoked", serial)

	id, removed, err := f.join(t, f.token, "removed")
	if err != nil {
		t.Fatal(err)
	}
	txn = store.Txn{}
	txn.Delete(store.NodeKey(id), 0)
	if _, err := f.s.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	err = f.session(ctx, removed, &berthv1.NodeDescription{Name: "removed"})
	wantCode(t, "a session of a removed node", err, codes.PermissionDenied, "not a member of the cluster")
}

// TestHelloCannotRenameANode: name, hostname and agent labels stay what
// the node joined with, whatever its hello says; each claim is reported
// once.
func TestHelloCannotRenameANode(t *testing.T) {
	ctx := context.Background()
	f := newJoinFixture(t)
	id, cert, err := f.join(t, f.token, "beta")
	if err != nil {
		t.Fatal(err)
	}
	desc := &berthv1.NodeDescription{Name: "gamma", Hostname: "gamma.example", Labels: map[string]string{"zone": "us", "gpu": "yes"}}
	n, claims, err := f.d.register(ctx, id, cert, desc)
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "beta" || n.Hostname != "beta.example" || n.Labels["zone"] != "eu" || n.Labels["gpu"] != "" {
		t.Fatalf("after a hello as gamma the node is %s (%s) with labels %v; want beta as joined", n.Name, n.Hostname, n.Labels)
	}
	if len(claims) != 3 || claims[0] != "node beta says it is now gamma; its name stays beta (fixed at join)" {
		t.Fatalf("claims = %q", claims)
	}
	start := time.Now().Add(-time.Minute)
	f.d.reportClaims(id, n.Name, claims)
	f.d.reportClaims(id, n.Name, claims)
	if err := f.s.FlushEvents(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := f.s.Events(ctx, start, 100, func(ev *berthv1.Event) bool { return ev.Action == "identity-claim" })
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events for 3 claims said twice, want 3", len(evs))
	}
}

// joined stores node id as Join would have, bound to a certificate of a
// random serial, and returns that certificate.
func joined(t *testing.T, s *store.Store, c *store.Cache, id, name string, labels map[string]string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	cert := &x509.Certificate{SerialNumber: serial, NotAfter: time.Now().Add(time.Hour).Truncate(time.Second)}
	n := joinedNode(id, &berthv1.JoinRequest{NodeName: name, Labels: labels}, cert, time.Now())
	var txn store.Txn
	txn.Create(store.NodeKey(id), n)
	rev, err := s.Commit(context.Background(), &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	return cert
}
