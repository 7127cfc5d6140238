package gossip

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

func startMember(t *testing.T, name string, key []byte) *Member {
	t.Helper()
	m, err := Start(Config{Name: name, Bind: "127.0.0.1:0", Key: key, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(m.Close)
	return m
}

// waitState waits, on m's change signal, until name is in the state want
// says it should be.
func waitState(t *testing.T, m *Member, name string, want func(State, bool) bool, what string) State {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		if s, ok := m.State(name); want(s, ok) {
			return s
		}
		select {
		case <-m.Changed():
		case <-deadline.C:
			s, ok := m.State(name)
			t.Fatalf("member %s: want %s, have %+v (known %v)", name, what, s, ok)
		}
	}
}

func TestMembersSeeFailuresAndDepartures(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a := startMember(t, "a", key)
	b := startMember(t, "b", key)
	c := startMember(t, "c", key)
	for _, m := range []*Member{b, c} {
		if err := m.Join([]string{a.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	alive := func(s State, ok bool) bool { return ok && s.Alive }
	waitState(t, a, "b", alive, "alive")
	waitState(t, a, "c", alive, "alive")
	if n := a.Members(); n != 3 {
		t.Fatalf("a sees %d members alive, want 3", n)
	}

	c.Close()
	s := waitState(t, a, "c", func(s State, ok bool) bool { return ok && !s.Alive }, "dead")
	if s.Left {
		t.Fatalf("a member that stopped answering is reported as having left: %+v", s)
	}

	b.Leave(time.Second)
	s = waitState(t, a, "b", func(s State, ok bool) bool { return ok && !s.Alive }, "gone")
	if !s.Left {
		t.Fatalf("a member that said goodbye is reported as failed: %+v", s)
	}
	if _, ok := a.State("never"); ok {
		t.Fatalf("a member never seen has a state")
	}
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a := startMember(t, "a", bytes.Repeat([]byte{1}, 32))
	b := startMember(t, "b", bytes.Repeat([]byte{2}, 32))
	if err := b.Join([]string{a.Addr()}); err == nil {
		t.Fatalf("a member with another key joined")
	}
	if _, ok := a.State("b"); ok {
		t.Fatalf("a knows a member with another key")
	}
}

func TestBadAddress(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:http", "127.0.0.1:70000"} {
		if _, err := Start(Config{Name: "x", Bind: addr}); err == nil {
			t.Errorf("Start with bind %q: no error", addr)
		}
	}
}
