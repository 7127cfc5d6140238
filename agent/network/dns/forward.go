package dns

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	miekg "github.com/miekg/dns"
)

// forward asks the upstream servers in turn and returns the first real
// answer. Each server gets an equal share of the time left, so a silent
// first server does not leave the others none. A server that answers
// SERVFAIL or REFUSED is passed over, like a resolver library does, but
// its answer is returned if no other server gives a better one; when none
// answers at all the container gets SERVFAIL. The query goes over UDP and
// again over TCP if the answer was truncated. It runs from the agent's
// network namespace, where the node's resolvers are reachable.
func (s *Server) forward(ctx context.Context, r *miekg.Msg, upstream []string) *miekg.Msg {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	var fallback *miekg.Msg
	for i, up := range upstream {
		share := time.Until(deadline) / time.Duration(len(upstream)-i)
		actx, acancel := context.WithTimeout(ctx, share)
		resp, err := exchange(actx, r, up)
		acancel()
		if err != nil {
			s.log.Debug("dns: upstream server did not answer",
				"upstream", up, "name", r.Question[0].Name, "err", err)
			continue
		}
		if resp.Rcode == miekg.RcodeServerFailure || resp.Rcode == miekg.RcodeRefused {
			if fallback == nil {
				fallback = resp
			}
			continue
		}
		return resp
	}
	if fallback != nil {
		return fallback
	}
	m := new(miekg.Msg).SetRcode(r, miekg.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// exchange asks one server: over UDP, then over TCP if the answer does not
// fit. If TCP fails the truncated answer is returned; the client may try
// TCP itself.
func exchange(ctx context.Context, r *miekg.Msg, addr string) (*miekg.Msg, error) {
	resp, err := exchangeOver(ctx, "udp", r, addr)
	if err != nil || !resp.Truncated {
		return resp, err
	}
	if full, err := exchangeOver(ctx, "tcp", r, addr); err == nil {
		return full, nil
	}
	return resp, nil
}

var errMismatch = errors.New("answer does not match the query")

// exchangeOver sends r to addr on network and reads the answer, until
// ctx ends. Unlike the dns package's Client it stops as soon as ctx is
// cancelled, so stopping a container's server does not wait out a slow
// upstream.
func exchangeOver(ctx context.Context, network string, r *miekg.Msg, addr string) (*miekg.Msg, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if deadline, ok := ctx.Deadline(); ok {
		nc.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	co := &miekg.Conn{Conn: nc, UDPSize: miekg.MaxMsgSize}
	if err := co.WriteMsg(r); err != nil {
		return nil, err
	}
	for {
		resp, err := co.ReadMsg()
		if err != nil {
			return nil, err
		}
		if resp.Id == r.Id && sameQuestion(resp, r) {
			return resp, nil
		}
		if network != "udp" {
			return nil, errMismatch
		}
		// A stray datagram; the real answer may still come.
	}
}

func sameQuestion(resp, r *miekg.Msg) bool {
	if len(resp.Question) != len(r.Question) {
		// Some servers leave the question out of an error answer.
		return len(resp.Question) == 0
	}
	for i, q := range resp.Question {
		rq := r.Question[i]
		if q.Qtype != rq.Qtype || q.Qclass != rq.Qclass || !strings.EqualFold(q.Name, rq.Name) {
			return false
		}
	}
	return true
}
