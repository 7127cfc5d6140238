package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestServersFollowTheLeader(t *testing.T) {
	file := filepath.Join(t.TempDir(), "servers")
	s := newServers([]string{"a:1", " b:1 ", "a:1"}, file)
	if got := strings.Join(s.addrs, ","); got != "a:1,b:1" {
		t.Fatalf("given servers: %s, want a:1,b:1", got)
	}
	if got := s.target(); got != "a:1" {
		t.Fatalf("first target %s, want a:1", got)
	}
	s.follow("c:1")
	if got := s.target(); got != "c:1" {
		t.Fatalf("target after a redirect: %s, want the leader c:1", got)
	}
	s.failed("c:1")
	if got := s.target(); got != "a:1" {
		t.Fatalf("target after the leader failed: %s, want the server after it, a:1", got)
	}
	s.failed("a:1")
	if got := s.target(); got != "b:1" {
		t.Fatalf("target after a:1 failed: %s, want b:1", got)
	}

	if err := s.learn([]string{"b:1", "d:1"}); err != nil {
		t.Fatal(err)
	}
	again := newServers([]string{"e:1"}, file)
	if got := strings.Join(again.addrs, ","); got != "e:1,a:1,b:1,c:1,d:1" {
		t.Fatalf("servers after a restart: %s, want the given one then those learnt", got)
	}
	if _, err := os.Stat(file + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

func TestRefusalAndRetryDelay(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "not the leader")
	tests := []struct {
		name       string
		err        error
		trailer    metadata.MD
		wantLeader string
		refused    bool
		immediate  bool
	}{
		{"names the leader", unavailable, metadata.Pairs(berthv1.LeaderMetadataKey, "l:1"), "l:1", true, true},
		{"names itself", unavailable, metadata.Pairs(berthv1.LeaderMetadataKey, "s:1"), "s:1", true, false},
		{"no leader yet", unavailable, nil, "", true, false},
		{"other error", status.Error(codes.PermissionDenied, "no"), nil, "", false, false},
		{"plain error", errors.New("broken"), nil, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := refusal("s:1", tt.err, tt.trailer)
			var nl *notLeaderError
			if got := errors.As(err, &nl); got != tt.refused {
				t.Fatalf("refused = %v, want %v (%v)", got, tt.refused, err)
			}
			if tt.refused && nl.leader != tt.wantLeader {
				t.Fatalf("leader %q, want %q", nl.leader, tt.wantLeader)
			}
			if got := retryDelay(err, 1, time.Second, true) == 0; got != tt.immediate {
				t.Fatalf("immediate retry = %v, want %v", got, tt.immediate)
			}
			if d := retryDelay(err, 1, time.Second, false); !tt.immediate && d != time.Second {
				t.Fatalf("one server: delay %s, want the backoff", d)
			}
			// Servers that keep naming each other are not followed
			// without pause.
			if d := retryDelay(err, maxRedirects+1, time.Second, true); d == 0 {
				t.Fatalf("refusal %d in a row followed at once", maxRedirects+1)
			}
		})
	}
}
