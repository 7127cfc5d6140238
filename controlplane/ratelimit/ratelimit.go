// Package ratelimit limits how fast callers may call the control plane's
// gRPC API: unauthenticated joins by source address, everything else by the
// principal that makes the call. A caller over its limit is answered
// ResourceExhausted at once; nothing waits in the server. Agents' and
// servers' own calls are never limited: a throttled agent session would
// look like a failed node.
package ratelimit

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/berthproject/berth/api/access"
	"github.com/berthproject/berth/api/identity"
)

// JoinMethod is the one method callers make without a credential; it is
// limited by source address.
const JoinMethod = "/berth.v1.AgentService/Join"

// Defaults: joins are rare (a node joins once), users' calls come from
// people and scripts; both bursts let a deploy script or a fleet being
// provisioned run without waiting.
const (
	DefaultJoinRate   = 5
	DefaultJoinBurst  = 20
	DefaultCallRate   = 50
	DefaultCallBurst  = 200
	DefaultMaxCallers = 10000
)

// Config sets the limits. Zero values take the defaults; a negative rate
// turns that limit off.
type Config struct {
	// JoinRate and JoinBurst limit Join calls per source address (a
	// second, and at once).
	JoinRate  float64
	JoinBurst int
	// CallRate and CallBurst limit every other call per principal (a
	// user's certificate, an API token); nodes and servers are exempt.
	CallRate  float64
	CallBurst int
	// MaxCallers bounds the callers remembered; past it the idle ones
	// (whose bucket is full again, so forgetting them changes nothing)
	// are forgotten, and if that is not enough, random ones.
	MaxCallers int
	// Now reads the clock; nil is time.Now. Tests pass a fake one.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.JoinRate == 0 {
		c.JoinRate = DefaultJoinRate
	}
	if c.JoinBurst <= 0 {
		c.JoinBurst = DefaultJoinBurst
	}
	if c.CallRate == 0 {
		c.CallRate = DefaultCallRate
	}
	if c.CallBurst <= 0 {
		c.CallBurst = DefaultCallBurst
	}
	if c.MaxCallers <= 0 {
		c.MaxCallers = DefaultMaxCallers
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Limiter holds a token bucket per caller. It is safe for concurrent use.
type Limiter struct {
	cfg   Config
	joins *buckets
	calls *buckets
}

// New returns a limiter with cfg's limits.
func New(cfg Config) *Limiter {
	cfg = cfg.withDefaults()
	return &Limiter{
		cfg:   cfg,
		joins: newBuckets(cfg.JoinRate, cfg.JoinBurst, cfg.MaxCallers),
		calls: newBuckets(cfg.CallRate, cfg.CallBurst, cfg.MaxCallers),
	}
}

// Unary limits unary calls.
func (l *Limiter) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := l.Allow(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream limits the opening of streams; what flows on an open stream is
// not counted.
func (l *Limiter) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := l.Allow(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// Allow takes one call of method by ctx's caller from its bucket, or
// answers ResourceExhausted naming the caller and its limit.
func (l *Limiter) Allow(ctx context.Context, method string) error {
	now := l.cfg.Now()
	if method == JoinMethod {
		addr := sourceAddress(ctx)
		if !l.joins.allow(addr, now) {
			return status.Errorf(codes.ResourceExhausted, "too many joins from %s: at most %s a second; slow down", addr, perSecond(l.cfg.JoinRate))
		}
		return nil
	}
	who, exempt := caller(ctx)
	if exempt {
		return nil
	}
	if !l.calls.allow(who, now) {
		return status.Errorf(codes.ResourceExhausted, "too many calls from %s: at most %s a second; slow down", who, perSecond(l.cfg.CallRate))
	}
	return nil
}

// caller names who makes a call, for its bucket; exempt is true for nodes
// and servers. The authorisation interceptor's principal comes first; a
// call it has not seen is named by its certificate, else its address.
func caller(ctx context.Context) (who string, exempt bool) {
	if p, ok := access.FromContext(ctx); ok {
		return p.String(), p.Kind == "node" || p.Kind == "server" || p.Role == identity.RoleNode || p.Role == identity.RoleServer
	}
	if id, ok := identity.FromContext(ctx); ok {
		return id.String(), id.Role == identity.RoleNode || id.Role == identity.RoleServer
	}
	return "address " + sourceAddress(ctx), false
}

// sourceAddress is the caller's IP address (without its port, which
// changes with every connection).
func sourceAddress(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "an unknown address"
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}

func perSecond(r float64) string {
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// buckets is a token bucket per key, bounded in number.
type buckets struct {
	limit rate.Limit
	burst int
	// full is how long an untouched bucket takes to fill up again: after
	// that it is the same as a new one and can be forgotten.
	full time.Duration
	max  int

	mu      sync.Mutex
	entries map[string]*bucket
	// sweepAt is the size at which idle buckets are swept out next; it
	// doubles with what a sweep leaves, so sweeping costs O(1) a call.
	sweepAt int
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

const minSweep = 1024

func newBuckets(r float64, burst, max int) *buckets {
	b := &buckets{burst: burst, max: max, entries: map[string]*bucket{}, sweepAt: min(minSweep, max)}
	if r < 0 {
		b.limit = rate.Inf
		return b
	}
	b.limit = rate.Limit(r)
	b.full = time.Duration(float64(burst) / r * float64(time.Second))
	return b
}

func (b *buckets) allow(key string, now time.Time) bool {
	if b.limit == rate.Inf {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		if len(b.entries) >= b.sweepAt {
			b.sweep(now)
		}
		e = &bucket{lim: rate.NewLimiter(b.limit, b.burst)}
		b.entries[key] = e
	}
	e.last = now
	return e.lim.AllowN(now, 1)
}

// sweep forgets the buckets that are full again and, when more than half
// of max remain (many addresses joining at once), random ones down to
// half: each forgotten one starts again with a full burst, which bounds
// memory at the cost of precision. Map order is random, so which go is too.
func (b *buckets) sweep(now time.Time) {
	for k, e := range b.entries {
		if now.Sub(e.last) >= b.full {
			delete(b.entries, k)
		}
	}
	if len(b.entries) >= b.max/2 {
		// Down to half, so the next sweep is max/2 new callers away.
		for k := range b.entries {
			if len(b.entries) < b.max/2 {
				break
			}
			delete(b.entries, k)
		}
	}
	b.sweepAt = min(max(2*len(b.entries), minSweep), b.max)
}

// size is how many callers are remembered, for tests.
func (b *buckets) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// String describes the limits, for the server's start-up log.
func (l *Limiter) String() string {
	return fmt.Sprintf("joins %s/s (burst %d) per address, calls %s/s (burst %d) per user or token",
		perSecond(l.cfg.JoinRate), l.cfg.JoinBurst, perSecond(l.cfg.CallRate), l.cfg.CallBurst)
}
