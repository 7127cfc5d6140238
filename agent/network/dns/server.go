package dns

import (
	"context"
	"fmt"
	"github.com/berthproject/berth/agent/network/nspath"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	miekg "github.com/miekg/dns"
)

// DefaultForwardTimeout is how long a forwarded query may take, over all
// the upstream servers, before the container gets SERVFAIL.
const DefaultForwardTimeout = 2 * time.Second

// advertisedUDPSize is the EDNS(0) payload size the server announces:
// what it reads from its UDP socket.
const advertisedUDPSize = 4096

// Config is what a Server needs.
type Config struct {
	// Resolvers are the node's name servers, "ip:port" (a bare IP means
	// port 53), for the names the cluster does not know; nil reads
	// NodeResolvers(DefaultResolvConf), empty forwards nothing (SERVFAIL).
	Resolvers []string
	// Log is where the server logs; nil is slog.Default().
	Log *slog.Logger
	// ForwardTimeout bounds a forwarded query; 0 is
	// DefaultForwardTimeout.
	ForwardTimeout time.Duration
}

// Server is the name server of every container on the node. Each
// container has its own sockets at 127.0.0.11:53 in its network
// namespace (Listen); all of them read one Index, which SetIndex swaps
// when the network map changes.
type Server struct {
	log       *slog.Logger
	resolvers []string
	timeout   time.Duration
	// index is read by every query without a lock.
	index atomic.Pointer[Index]

	// mu guards containers, and makes Listen and Close of one container
	// happen one at a time, so a socket is closed before it is opened
	// again.
	mu         sync.Mutex
	containers map[string]*container
}

// NewServer returns a server for cfg, listening nowhere yet.
func NewServer(cfg Config) *Server {
	s := &Server{
		log:        cfg.Log,
		timeout:    cfg.ForwardTimeout,
		containers: map[string]*container{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.timeout <= 0 {
		s.timeout = DefaultForwardTimeout
	}
	if cfg.Resolvers == nil {
		s.resolvers = NodeResolvers(DefaultResolvConf)
	} else {
		s.resolvers = upstreamAddrs(cfg.Resolvers)
	}
	return s
}

// SetIndex makes ix the names every container's queries are answered
// from. Queries under way finish with the index they started with.
func (s *Server) SetIndex(ix *Index) { s.index.Store(ix) }

// Listen starts the name server of container id: UDP and TCP sockets at
// 127.0.0.11:53 in the network namespace at netnsPath (its loopback must
// be up), whose queries are answered as from task id. upstream (the
// service's dns servers) replaces the node's resolvers for the names the
// cluster does not know. Listening again for the same id and namespace
// only updates upstream; a different namespace (even at the same path)
// gets new sockets.
func (s *Server) Listen(id, netnsPath string, upstream []string) error {
	ups := upstreamAddrs(upstream)
	if len(ups) != len(upstream) {
		s.log.Warn("dns: ignoring upstream servers that are not IP addresses",
			"container", id, "dns", upstream)
	}

	ns, err := nspath.IDOf(netnsPath)
	if err != nil {
		return fmt.Errorf("start the name server of container %s: %w", id, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.containers[id]; c != nil {
		if c.netns == ns {
			c.upstream.Store(&ups)
			return nil
		}
		// Another namespace (a new one made at the same path): the old
		// sockets are in the wrong one.
		delete(s.containers, id)
		c.stop()
	}
	c, err := s.start(id, netnsPath, ns, ups)
	if err != nil {
		return fmt.Errorf("start the name server of container %s at %s in %s: %w", id, ListenAddr, netnsPath, err)
	}
	s.containers[id] = c
	return nil
}

// Close stops the name server of container id. A container without one
// is not an error.
func (s *Server) Close(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.containers[id]; c != nil {
		delete(s.containers, id)
		c.stop()
	}
	return nil
}

// Shutdown stops every container's name server.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.containers {
		delete(s.containers, id)
		c.stop()
	}
}

// container is the name server of one container.
type container struct {
	s     *Server
	id    string
	netns nspath.ID
	// upstream replaces the node's resolvers when not empty.
	upstream atomic.Pointer[[]string]
	// ctx ends with the server: forwarded queries under way give up.
	ctx    context.Context
	cancel context.CancelFunc

	pc       net.PacketConn
	ln       net.Listener
	udp, tcp *miekg.Server
	// wg counts the two serving goroutines.
	wg sync.WaitGroup
}

var _ miekg.Handler = (*container)(nil)

// start opens the sockets of container id in its namespace and serves
// them.
func (s *Server) start(id, netnsPath string, ns nspath.ID, upstream []string) (*container, error) {
	c := &container{s: s, id: id, netns: ns}
	c.upstream.Store(&upstream)
	err := nspath.Do(netnsPath, func() error {
		var err error
		if c.pc, err = net.ListenPacket("udp4", ListenAddr); err != nil {
			return err
		}
		if c.ln, err = net.Listen("tcp4", ListenAddr); err != nil {
			c.pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.udp = &miekg.Server{PacketConn: c.pc, Handler: c, UDPSize: advertisedUDPSize}
	// A client may keep its TCP connection for as many queries as it
	// likes; the idle timeout closes forgotten ones.
	c.tcp = &miekg.Server{Listener: c.ln, Handler: c, MaxTCPQueries: -1}
	for _, srv := range []*miekg.Server{c.udp, c.tcp} {
		if err := c.serve(srv); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// serve runs srv in a goroutine of c and returns once it reads its
// socket.
func (c *container) serve(srv *miekg.Server) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	failed := make(chan error, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := srv.ActivateAndServe()
		if err != nil && c.ctx.Err() == nil {
			c.s.log.Warn("dns: name server stopped", "container", c.id, "err", err)
		}
		failed <- err
	}()
	select {
	case <-started:
		return nil
	case err := <-failed:
		return err
	}
}

// stop ends c's servers and waits for them; queries under way are cut
// short.
func (c *container) stop() {
	c.cancel()
	// Shutdown of a server that never started says so; nothing to do then.
	_ = c.udp.Shutdown()
	_ = c.tcp.Shutdown()
	c.pc.Close()
	c.ln.Close()
	c.wg.Wait()
}

func (c *container) upstreams() []string {
	if ups := *c.upstream.Load(); len(ups) > 0 {
		return ups
	}
	return c.s.resolvers
}

// ServeDNS answers one query of the container; the dns package runs each
// in its own goroutine.
func (c *container) ServeDNS(w miekg.ResponseWriter, r *miekg.Msg) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	resp := c.s.respond(c.ctx, c.id, c.upstreams(), r)
	if udp {
		resp.Truncate(udpSize(r))
	} else {
		resp.Compress = true
	}
	if err := w.WriteMsg(resp); err != nil {
		c.s.log.Debug("dns: write answer", "container", c.id, "err", err)
	}
}

// udpSize is the largest answer the sender of r reads over UDP.
func udpSize(r *miekg.Msg) int {
	if opt := r.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), miekg.MinMsgSize)
	}
	return miekg.MinMsgSize
}

// respond answers r from the index if the name is the cluster's, as seen
// from task id, and forwards it to upstream otherwise.
func (s *Server) respond(ctx context.Context, id string, upstream []string, r *miekg.Msg) *miekg.Msg {
	if r.Opcode != miekg.OpcodeQuery {
		return new(miekg.Msg).SetRcode(r, miekg.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		return new(miekg.Msg).SetRcode(r, miekg.RcodeFormatError)
	}
	q := r.Question[0]
	if q.Qclass == miekg.ClassINET {
		ix := s.index.Load()
		if q.Qtype == miekg.TypePTR {
			if addr, ok := reverseAddr(q.Name); ok {
				if name, ok := ix.LookupPTR(id, addr); ok {
					m := reply(r)
					m.Answer = []miekg.RR{&miekg.PTR{Hdr: header(q.Name, miekg.TypePTR), Ptr: name}}
					return m
				}
			}
		} else if addrs, tasks, known := ix.lookup(id, q.Name, q.Qtype); known {
			m := reply(r)
			if tasks && len(addrs) > 1 {
				// Tasks' addresses in a new order each time spread the
				// clients that take the first.
				addrs = slices.Clone(addrs)
				rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
			}
			m.Answer = make([]miekg.RR, 0, len(addrs))
			for _, a := range addrs {
				m.Answer = append(m.Answer, &miekg.A{Hdr: header(q.Name, miekg.TypeA), A: a.AsSlice()})
			}
			return m
		}
	}
	return s.forward(ctx, r, upstream)
}

// reply starts the server's own answer to r.
func reply(r *miekg.Msg) *miekg.Msg {
	m := new(miekg.Msg).SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	if r.IsEdns0() != nil {
		m.SetEdns0(advertisedUDPSize, false)
	}
	return m
}

// header is a record's header: TTL 0, since names follow tasks within
// milliseconds.
func header(name string, rrtype uint16) miekg.RR_Header {
	return miekg.RR_Header{Name: name, Rrtype: rrtype, Class: miekg.ClassINET, Ttl: 0}
}

// reverseAddr reads an IPv4 reverse name, "5.0.128.10.in-addr.arpa.".
func reverseAddr(name string) (netip.Addr, bool) {
	name, ok := strings.CutSuffix(canonical(name), ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	labels := strings.Split(name, ".")
	if len(labels) != 4 {
		return netip.Addr{}, false
	}
	slices.Reverse(labels)
	return parseIPv4(strings.Join(labels, "."))
}

func parseIPv4(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a, err == nil && a.Is4()
}
