package session

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// servers is what the agent knows of the control plane: every server's
// address, which one to try next, and where the leader was last said to
// be. Only the leader takes sessions; the others name it.
type servers struct {
	mu    sync.Mutex
	addrs []string
	next  int
	// hint is the leader another server named, tried first.
	hint string
	// file keeps addrs across restarts; "" keeps nothing.
	file string
}

// newServers starts from the servers the agent was given, then those it
// learnt before (kept in file).
func newServers(given []string, file string) *servers {
	s := &servers{file: file}
	s.add(given)
	if file != "" {
		if b, err := os.ReadFile(file); err == nil {
			s.add(strings.Fields(string(b)))
		}
	}
	return s
}

func (s *servers) add(addrs []string) {
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(s.addrs, a) {
			s.addrs = append(s.addrs, a)
		}
	}
}

// target is the server to open the next session with.
func (s *servers) target() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hint != "" {
		return s.hint
	}
	return s.addrs[s.next%len(s.addrs)]
}

// follow makes leader the next target.
func (s *servers) follow(leader string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hint = leader
	s.add([]string{leader})
}

// failed moves on from addr: the next target is the server after it.
func (s *servers) failed(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hint = ""
	if i := slices.Index(s.addrs, addr); i >= 0 {
		s.next = i + 1
	} else {
		s.next++
	}
}

// learn records the servers a welcome listed, keeping them in the file
// when they changed. Those the agent was given stay known too.
func (s *servers) learn(addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before := len(s.addrs)
	s.add(addrs)
	if s.file == "" {
		return nil
	}
	if _, err := os.Stat(s.file); err == nil && len(s.addrs) == before {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.file), 0o700); err != nil {
		return err
	}
	tmp := s.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(s.addrs, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("keeping the server list: %w", err)
	}
	return os.Rename(tmp, s.file)
}

// several reports whether more than one server is known.
func (s *servers) several() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.addrs) > 1
}

// notLeaderError is a session refused by a server that does not lead.
type notLeaderError struct {
	server, leader string
	err            error
}

func (e *notLeaderError) Error() string { return e.err.Error() }
func (e *notLeaderError) Unwrap() error { return e.err }

// refusal turns the end of a stream the server closed before its headers
// into a notLeaderError when the server named a leader (or none yet).
func refusal(server string, err error, trailer metadata.MD) error {
	if st, ok := status.FromError(err); !ok || st.Code() != codes.Unavailable {
		return err
	}
	leader := ""
	if v := trailer.Get(berthv1.LeaderMetadataKey); len(v) > 0 {
		leader = v[0]
	}
	return &notLeaderError{server: server, leader: leader, err: err}
}

// leaderNamed returns the leader a server that refused the session named,
// when it named another server; "" otherwise.
func leaderNamed(err error) string {
	var nl *notLeaderError
	if errors.As(err, &nl) && nl.leader != nl.server {
		return nl.leader
	}
	return ""
}

// maxRedirects is how many refusals in a row are followed at once. During
// an election two servers may each name the other for a moment; past this
// the agent waits as after a failure instead of bouncing between them.
const maxRedirects = 3

// retryDelay is how long to wait before the next attempt after err, the
// redirects-th refusal in a row: a refusal is followed at once; a leader
// that cannot be reached is likely being replaced, so the servers are
// asked again shortly, with jitter so a thousand agents do not ask at
// once.
func retryDelay(err error, redirects int, backoff time.Duration, several bool) time.Duration {
	if leaderNamed(err) != "" && redirects <= maxRedirects {
		return 0
	}
	if several {
		return 150*time.Millisecond + rand.N(250*time.Millisecond)
	}
	return backoff
}
