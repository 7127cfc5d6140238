package dns

import (
	"github.com/berthproject/berth/agent/network/nspath"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/berthproject/berth/agent/network/netmap"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// These tests need root: each makes network namespaces, and the servers
// listen inside them. The upstream servers run on 127.0.0.1 of the test's
// own namespace, where the server forwards from.

// serverSnapshot: container c1 is a task of shop/web on shop_default,
// c2 of shop/api on shop_back; they share no network.
func serverSnapshot() *netmap.Snapshot {
	return &netmap.Snapshot{
		Networks: map[string]*berthv1.Network{
			"n1": {Meta: &berthv1.Meta{Id: "n1"}, Namespace: "default", App: "shop", Name: "shop_default", Subnet: "10.128.0.0/24"},
			"n2": {Meta: &berthv1.Meta{Id: "n2"}, Namespace: "default", App: "shop", Name: "shop_back", Subnet: "10.128.9.0/24"},
		},
		Services: map[string]*berthv1.NetworkService{
			"web": {Id: "web", Namespace: "default", App: "shop", Name: "web",
				Networks:   []*berthv1.ServiceNetwork{{Network: "shop_default"}},
				VirtualIps: []*berthv1.VirtualIP{{NetworkId: "n1", Network: "shop_default", Address: "10.128.0.2"}}},
			"api": {Id: "api", Namespace: "default", App: "shop", Name: "api",
				Networks:   []*berthv1.ServiceNetwork{{Network: "shop_back"}},
				VirtualIps: []*berthv1.VirtualIP{{NetworkId: "n2", Network: "shop_back", Address: "10.128.9.2"}}},
		},
		Tasks: map[string]*berthv1.NetworkTask{
			"c1": {Id: "c1", ServiceId: "web", Slot: 1, Ready: true,
				Networks: []*berthv1.TaskNetwork{{NetworkId: "n1", Network: "shop_default", Address: "10.128.0.10/24"}}},
			"w2": {Id: "w2", ServiceId: "web", Slot: 2, Ready: true,
				Networks: []*berthv1.TaskNetwork{{NetworkId: "n1", Network: "shop_default", Address: "10.128.0.11/24"}}},
			"c2": {Id: "c2", ServiceId: "api", Slot: 1, Ready: true,
				Networks: []*berthv1.TaskNetwork{{NetworkId: "n2", Network: "shop_back", Address: "10.128.9.10/24"}}},
		},
	}
}

// upstream is a name server on 127.0.0.1 that knows example.test (one
// address) and big.test (too many for 512 bytes: over UDP it answers
// truncated, as real servers do).
type upstream struct {
	addr       string
	tcpQueries atomic.Int32
}

const bigRecords = 60

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	handler := miekg.HandlerFunc(func(w miekg.ResponseWriter, r *miekg.Msg) {
		m := new(miekg.Msg).SetReply(r)
		q := r.Question[0]
		switch strings.ToLower(q.Name) {
		case "example.test.":
			m.Answer = append(m.Answer, &miekg.A{Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		case "big.test.":
			for i := range bigRecords {
				m.Answer = append(m.Answer, &miekg.A{Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, byte(i+1))})
			}
		default:
			m.SetRcode(r, miekg.RcodeNameError)
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncate(udpSize(r))
		} else {
			u.tcpQueries.Add(1)
		}
		w.WriteMsg(m)
	})

	// UDP and TCP on one port: take a free UDP port and try its TCP twin.
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no free port for UDP and TCP on 127.0.0.1")
	}
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*miekg.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return u
}

// silentUpstream is a UDP socket on 127.0.0.1 that reads queries and
// never answers; heard gets one value per query.
func silentUpstream(t *testing.T) (addr string, heard <-chan struct{}) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String(), ch
}

// query asks the server at 127.0.0.11:53 in the namespace ns, from a
// thread in that namespace.
func query(ns, network, name string, qtype uint16) (*miekg.Msg, error) {
	m := new(miekg.Msg).SetQuestion(name, qtype)
	var resp *miekg.Msg
	err := nspath.Do(ns, func() error {
		c := &miekg.Client{Net: network, Timeout: 10 * time.Second}
		var err error
		resp, _, err = c.Exchange(m, ListenAddr)
		return err
	})
	return resp, err
}

func mustQuery(t *testing.T, ns, network, name string, qtype uint16) *miekg.Msg {
	t.Helper()
	resp, err := query(ns, network, name, qtype)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, miekg.TypeToString[qtype], network, err)
	}
	return resp
}

func answerAddrs(m *miekg.Msg) []netip.Addr {
	var out []netip.Addr
	for _, rr := range m.Answer {
		if a, ok := rr.(*miekg.A); ok {
			addr, _ := netip.AddrFromSlice(a.A.To4())
			out = append(out, addr)
		}
	}
	return out
}

func newTestServer(t *testing.T, resolvers ...string) *Server {
	t.Helper()
	s := NewServer(Config{
		Resolvers:      resolvers,
		Log:            slog.New(slog.DiscardHandler),
		ForwardTimeout: time.Second,
	})
	t.Cleanup(s.Shutdown)
	s.SetIndex(NewIndex(serverSnapshot()))
	return s
}

func TestServerAnswers(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t)
	up := startUpstream(t)
	s := newTestServer(t, up.addr)
	if err := s.Listen("c1", ns, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("c1", ns, nil); err != nil {
		t.Fatalf("Listen again: %v", err)
	}

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			tests := []struct {
				name  string
				qtype uint16
				rcode int
				want  []netip.Addr
			}{
				{"web.", miekg.TypeA, miekg.RcodeSuccess, addrs("10.128.0.2")},
				{"WEB.shop.", miekg.TypeA, miekg.RcodeSuccess, addrs("10.128.0.2")},
				{"web.", miekg.TypeAAAA, miekg.RcodeSuccess, nil},
				{"example.test.", miekg.TypeA, miekg.RcodeSuccess, addrs("192.0.2.1")},
				{"nothing.test.", miekg.TypeA, miekg.RcodeNameError, nil},
				// Not on c1's networks: forwarded, and upstream has no such name.
				{"api.", miekg.TypeA, miekg.RcodeNameError, nil},
			}
			for _, tt := range tests {
				resp := mustQuery(t, ns, network, tt.name, tt.qtype)
				got := answerAddrs(resp)
				if resp.Rcode != tt.rcode || !slices.Equal(got, tt.want) {
					t.Errorf("%s %s: %s %v, want %s %v", tt.name, miekg.TypeToString[tt.qtype],
						miekg.RcodeToString[resp.Rcode], got, miekg.RcodeToString[tt.rcode], tt.want)
				}
			}

			resp := mustQuery(t, ns, network, "web.", miekg.TypeA)
			if !resp.Authoritative || resp.Answer[0].Header().Ttl != 0 {
				t.Errorf("web.: authoritative %v, TTL %d; want an authoritative answer with TTL 0",
					resp.Authoritative, resp.Answer[0].Header().Ttl)
			}

			resp = mustQuery(t, ns, network, "tasks.web.", miekg.TypeA)
			got := answerAddrs(resp)
			slices.SortFunc(got, netip.Addr.Compare)
			if want := addrs("10.128.0.10", "10.128.0.11"); !slices.Equal(got, want) {
				t.Errorf("tasks.web.: %v, want %v in any order", got, want)
			}

			resp = mustQuery(t, ns, network, "2.0.128.10.in-addr.arpa.", miekg.TypePTR)
			if len(resp.Answer) != 1 || resp.Answer[0].(*miekg.PTR).Ptr != "web.shop." {
				t.Errorf("PTR of the virtual IP: %v, want web.shop.", resp.Answer)
			}
		})
	}

	t.Run("truncated upstream answer", func(t *testing.T) {
		before := up.tcpQueries.Load()
		resp := mustQuery(t, ns, "tcp", "big.test.", miekg.TypeA)
		if len(resp.Answer) != bigRecords || resp.Truncated {
			t.Errorf("big.test. over TCP: %d records (truncated %v), want %d", len(resp.Answer), resp.Truncated, bigRecords)
		}
		if up.tcpQueries.Load() == before {
			t.Error("the server did not ask the upstream again over TCP after a truncated answer")
		}
		resp = mustQuery(t, ns, "udp", "big.test.", miekg.TypeA)
		if !resp.Truncated || len(resp.Answer) >= bigRecords {
			t.Errorf("big.test. over UDP: %d records (truncated %v), want a truncated answer", len(resp.Answer), resp.Truncated)
		}
	})

	t.Run("new index", func(t *testing.T) {
		snap := serverSnapshot()
		delete(snap.Services, "web")
		snap.Services["web2"] = &berthv1.NetworkService{Id: "web2", Namespace: "default", App: "shop", Name: "front",
			Networks:   []*berthv1.ServiceNetwork{{Network: "shop_default"}},
			VirtualIps: []*berthv1.VirtualIP{{NetworkId: "n1", Network: "shop_default", Address: "10.128.0.3"}}}
		snap.Tasks["c1"].ServiceId = "web2"
		s.SetIndex(NewIndex(snap))
		defer s.SetIndex(NewIndex(serverSnapshot()))
		if resp := mustQuery(t, ns, "udp", "web.", miekg.TypeA); resp.Rcode != miekg.RcodeNameError {
			t.Errorf("web. after its removal: %s, want NXDOMAIN from upstream", miekg.RcodeToString[resp.Rcode])
		}
		if got := answerAddrs(mustQuery(t, ns, "udp", "front.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.0.3")) {
			t.Errorf("front.: %v, want 10.128.0.3", got)
		}
	})

	t.Run("index swapped during queries", func(t *testing.T) {
		stop := make(chan struct{})
		swapped := make(chan struct{})
		go func() {
			defer close(swapped)
			for {
				select {
				case <-stop:
					return
				default:
					s.SetIndex(NewIndex(serverSnapshot()))
				}
			}
		}()
		defer func() {
			close(stop)
			<-swapped
		}()
		for range 50 {
			if got := answerAddrs(mustQuery(t, ns, "udp", "web.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.0.2")) {
				t.Fatalf("web. = %v", got)
			}
		}
	})

	t.Run("close", func(t *testing.T) {
		if err := s.Close("c1"); err != nil {
			t.Fatal(err)
		}
		for _, network := range []string{"udp", "tcp"} {
			if resp, err := query(ns, network, "web.", miekg.TypeA); err == nil {
				t.Errorf("after Close, a query over %s got %v", network, resp)
			}
		}
		if err := s.Close("c1"); err != nil {
			t.Errorf("Close again: %v", err)
		}
		// And it can start again.
		if err := s.Listen("c1", ns, nil); err != nil {
			t.Fatalf("Listen after Close: %v", err)
		}
		if got := answerAddrs(mustQuery(t, ns, "udp", "web.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.0.2")) {
			t.Errorf("web. after Listen again: %v", got)
		}
	})
}

// Two containers in their own namespaces: each is answered as its own
// task, with its own upstream servers; a query waiting on a silent
// upstream does not hold up others, gets SERVFAIL, and Close cuts it
// short.
func TestServerContainers(t *testing.T) {
	requireRoot(t)
	ns1, ns2 := newNetNS(t), newNetNS(t)
	up := startUpstream(t)
	silent, heard := silentUpstream(t)
	s := newTestServer(t, up.addr)
	if err := s.Listen("c1", ns1, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("c2", ns2, []string{silent}); err != nil {
		t.Fatal(err)
	}

	if got := answerAddrs(mustQuery(t, ns2, "udp", "api.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.9.2")) {
		t.Errorf("c2: api. = %v, want 10.128.9.2", got)
	}
	if resp := mustQuery(t, ns1, "udp", "api.", miekg.TypeA); resp.Rcode != miekg.RcodeNameError {
		t.Errorf("c1: api. (not on its network) = %s, want NXDOMAIN from upstream", miekg.RcodeToString[resp.Rcode])
	}

	// c2's forwarded query waits on the silent server; c1 and c2's own
	// names answer meanwhile.
	slow := make(chan *miekg.Msg, 1)
	go func() {
		resp, _ := query(ns2, "udp", "example.test.", miekg.TypeA)
		slow <- resp
	}()
	<-heard
	if got := answerAddrs(mustQuery(t, ns2, "udp", "api.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.9.2")) {
		t.Errorf("c2 during a forward: api. = %v", got)
	}
	if got := answerAddrs(mustQuery(t, ns1, "tcp", "example.test.", miekg.TypeA)); !slices.Equal(got, addrs("192.0.2.1")) {
		t.Errorf("c1 during c2's forward: example.test. = %v", got)
	}
	if resp := <-slow; resp == nil || resp.Rcode != miekg.RcodeServerFailure {
		t.Errorf("forward to a silent upstream: %v, want SERVFAIL", resp)
	}

	// Listen again with other upstream servers takes them.
	if err := s.Listen("c2", ns2, []string{up.addr}); err != nil {
		t.Fatal(err)
	}
	if got := answerAddrs(mustQuery(t, ns2, "udp", "example.test.", miekg.TypeA)); !slices.Equal(got, addrs("192.0.2.1")) {
		t.Errorf("c2 with the working upstream: example.test. = %v", got)
	}

	// Close while a forward is under way.
	if err := s.Listen("c2", ns2, []string{silent}); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, _ := query(ns2, "tcp", "example.test.", miekg.TypeA)
		slow <- resp
	}()
	<-heard
	if err := s.Close("c2"); err != nil {
		t.Fatal(err)
	}
	if resp := <-slow; resp != nil && resp.Rcode == miekg.RcodeSuccess {
		t.Errorf("a query cut short by Close answered %v", resp)
	}
	if got := answerAddrs(mustQuery(t, ns1, "udp", "web.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.0.2")) {
		t.Errorf("c1 after c2's Close: web. = %v", got)
	}
}

func TestListenErrors(t *testing.T) {
	requireRoot(t)
	s := newTestServer(t, "127.0.0.1:9")
	if err := s.Listen("c1", "/nonexistent/netns", nil); err == nil {
		t.Error("Listen in a namespace that does not exist succeeded")
	}
	ns := newNetNS(t)
	if err := s.Listen("c1", ns, nil); err != nil {
		t.Fatal(err)
	}
	// Another server on the same address in the same namespace fails and
	// leaves the first one working.
	other := newTestServer(t, "127.0.0.1:9")
	if err := other.Listen("c9", ns, nil); err == nil {
		t.Error("a second server on 127.0.0.11:53 in one namespace succeeded")
	}
	if got := answerAddrs(mustQuery(t, ns, "udp", "web.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.0.2")) {
		t.Errorf("web. = %v", got)
	}
}

// Listening again for a container in another namespace moves its server
// there.
func TestListenNewNamespace(t *testing.T) {
	requireRoot(t)
	old, ns := newNetNS(t), newNetNS(t)
	s := newTestServer(t, "127.0.0.1:9")
	if err := s.Listen("c1", old, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("c1", ns, nil); err != nil {
		t.Fatal(err)
	}
	if got := answerAddrs(mustQuery(t, ns, "udp", "web.", miekg.TypeA)); !slices.Equal(got, addrs("10.128.0.2")) {
		t.Errorf("web. in the new namespace = %v", got)
	}
	if resp, err := query(old, "tcp", "web.", miekg.TypeA); err == nil {
		t.Errorf("the old namespace still answers: %v", resp)
	}
}
