package dispatcher

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// trailerStream is a session stream that keeps the trailer set on it.
type trailerStream struct {
	grpc.ServerStream
	trailer metadata.MD
}

func (s *trailerStream) SetTrailer(md metadata.MD)            { s.trailer = metadata.Join(s.trailer, md) }
func (s *trailerStream) Send(*berthv1.ServerMessage) error    { return nil }
func (s *trailerStream) Recv() (*berthv1.AgentMessage, error) { return nil, context.Canceled }
func (s *trailerStream) Context() context.Context             { return context.Background() }
func (s *trailerStream) SendHeader(metadata.MD) error         { return nil }
func (s *trailerStream) SetHeader(metadata.MD) error          { return nil }
func (s *trailerStream) SendMsg(any) error                    { return nil }
func (s *trailerStream) RecvMsg(any) error                    { return context.Canceled }

func TestNotLeaderNamesTheLeader(t *testing.T) {
	for _, tc := range []struct {
		name, leader, wantMsg string
	}{
		{"leader known", "10.0.0.1:4242", "the leader is at 10.0.0.1:4242"},
		{"no leader yet", "", "no leader is elected yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Config{Log: slog.New(slog.DiscardHandler), Leader: func() string { return tc.leader }})
			stream := &trailerStream{}
			err := d.notLeader(stream)
			st, _ := status.FromError(err)
			if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), tc.wantMsg) {
				t.Fatalf("refusal = %v, want Unavailable saying %q", err, tc.wantMsg)
			}
			got := stream.trailer.Get(berthv1.LeaderMetadataKey)
			if (tc.leader == "" && len(got) != 0) || (tc.leader != "" && (len(got) != 1 || got[0] != tc.leader)) {
				t.Fatalf("trailer names %v, want %q", got, tc.leader)
			}
		})
	}
}

// TestEndTermClosesSessions closes the term's sessions when leadership
// ends, and takes no more.
func TestEndTermClosesSessions(t *testing.T) {
	d := New(Config{Log: slog.New(slog.DiscardHandler)})
	term, endTerm := context.WithCancel(context.Background())
	d.startTerm(term)
	if d.currentTerm() != term {
		t.Fatalf("no term after startTerm")
	}
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.sessions["n1"] = newSession("n1", term, cancel)
	endTerm()
	d.endTerm()
	if sctx.Err() == nil {
		t.Fatalf("the session outlived the term")
	}
	if d.currentTerm() != nil {
		t.Fatalf("a term is current after endTerm")
	}
}

func TestHeard(t *testing.T) {
	d := New(Config{Log: slog.New(slog.DiscardHandler)})
	before := time.Now()
	s := newSession("n1", context.Background(), func() {})
	s.heard()
	d.sessions["n1"] = s
	at, ok := d.Heard("n1")
	if !ok || at.Before(before) {
		t.Fatalf("Heard(n1) = %v, %v; want connected, heard after %v", at, ok, before)
	}
	if _, ok := d.Heard("n2"); ok {
		t.Fatalf("Heard(n2) says connected; n2 has no session")
	}
}
