package ratelimit

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/berthproject/berth/api/access"
	"github.com/berthproject/berth/api/identity"
)

// clock is a fake clock the tests move by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func fromAddr(ip string) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}})
}

func as(ctx context.Context, kind, name string, role identity.Role) context.Context {
	return access.NewContext(ctx, access.Principal{Kind: kind, Name: name, Role: role})
}

const apply = "/berth.v1.ClusterService/Apply"

// exhaust calls until the limiter refuses, and returns how many it let
// through (at most limit+1 calls are made).
func exhaust(t *testing.T, l *Limiter, ctx context.Context, method string, limit int) (int, error) {
	t.Helper()
	for i := 0; i <= limit; i++ {
		if err := l.Allow(ctx, method); err != nil {
			return i, err
		}
	}
	return limit + 1, nil
}

func TestJoinLimitedPerAddress(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	l := New(Config{JoinRate: 5, JoinBurst: 20, Now: c.Now})
	n, err := exhaust(t, l, fromAddr("192.0.2.1"), JoinMethod, 100)
	if n != 20 || status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many joins from 192.0.2.1: at most 5 a second; slow down") {
		t.Fatalf("joins from one address: %d allowed, then %v; want 20, then ResourceExhausted naming the address and the rate", n, err)
	}
	// Another address has its own bucket.
	if err := l.Allow(fromAddr("192.0.2.2"), JoinMethod); err != nil {
		t.Fatalf("join from another address: %v; want allowed", err)
	}
	// A second later, 5 more.
	c.now = c.now.Add(time.Second)
	if n, _ := exhaust(t, l, fromAddr("192.0.2.1"), JoinMethod, 100); n != 5 {
		t.Fatalf("joins a second later: %d allowed; want 5", n)
	}
}

func TestCallsLimitedPerPrincipal(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	l := New(Config{CallRate: 50, CallBurst: 200, Now: c.Now})
	alice := as(fromAddr("192.0.2.1"), "user", "alice", identity.RoleAdmin)
	n, err := exhaust(t, l, alice, apply, 1000)
	if n != 200 || status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many calls from user/alice: at most 50 a second; slow down") {
		t.Fatalf("alice's calls: %d allowed, then %v; want 200, then ResourceExhausted naming her", n, err)
	}
	// The same address with another principal is not limited by alice.
	if err := l.Allow(as(fromAddr("192.0.2.1"), "token", "ci", identity.RoleDeployer), apply); err != nil {
		t.Fatalf("token ci after alice is throttled: %v; want allowed", err)
	}
	// Nodes and servers are never limited, whatever they call.
	for _, ctx := range []context.Context{
		as(context.Background(), "node", "n1", identity.RoleNode),
		as(context.Background(), "server", "s1", identity.RoleServer),
	} {
		if n, err := exhaust(t, l, ctx, "/berth.v1.AgentService/Session", 5000); n != 5001 {
			t.Fatalf("node or server calls: %d allowed, then %v; want never limited", n, err)
		}
	}
}

func TestNegativeRateTurnsLimitOff(t *testing.T) {
	l := New(Config{CallRate: -1, JoinRate: -1})
	if n, err := exhaust(t, l, as(context.Background(), "user", "alice", identity.RoleAdmin), apply, 5000); n != 5001 {
		t.Fatalf("calls with the limit off: %d allowed, then %v", n, err)
	}
	if n, err := exhaust(t, l, fromAddr("192.0.2.1"), JoinMethod, 5000); n != 5001 {
		t.Fatalf("joins with the limit off: %d allowed, then %v", n, err)
	}
}

func TestCallersBounded(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	l := New(Config{MaxCallers: 2000, Now: c.Now})
	for i := range 10000 {
		if err := l.Allow(fromAddr(fmt.Sprintf("10.0.%d.%d", i/256, i%256)), JoinMethod); err != nil {
			t.Fatalf("first join from address %d: %v", i, err)
		}
	}
	if got := l.joins.size(); got > 2000 {
		t.Fatalf("%d addresses remembered; want at most 2000", got)
	}
	// Once their buckets are full again, idle callers are forgotten at
	// the next sweep.
	c.now = c.now.Add(time.Hour)
	for i := range minSweep + 1 {
		l.Allow(as(context.Background(), "token", fmt.Sprint(i), identity.RoleViewer), apply)
	}
	c.now = c.now.Add(time.Hour)
	l.Allow(fromAddr("192.0.2.9"), JoinMethod)
	if got := l.joins.size(); got > 2000 {
		t.Fatalf("%d addresses remembered after an idle hour; want at most 2000", got)
	}
}

func TestIdleSweepForgetsOnlyFullBuckets(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	b := newBuckets(1, 2, 10)
	b.sweepAt = 2
	b.allow("busy", c.now)
	b.allow("busy", c.now)
	b.allow("idle", c.now.Add(-time.Minute))
	b.allow("new", c.now) // sweeps: idle goes, busy (empty bucket) stays
	if _, ok := b.entries["idle"]; ok {
		t.Fatal("idle caller kept after a sweep")
	}
	if b.allow("busy", c.now) {
		t.Fatal("busy caller's empty bucket was forgotten by a sweep")
	}
}
