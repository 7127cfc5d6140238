package nodecheck

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Minute)
	cond := func(typ string, ok bool, msg string, since time.Time) *berthv1.NodeCondition {
		return &berthv1.NodeCondition{Type: typ, Ok: ok, Message: msg, Since: timestamppb.New(since)}
	}
	prev := []*berthv1.NodeCondition{cond("runtime", true, "", t0), cond("disk", false, "full", t0), cond("network", true, "", t0)}
	for _, tc := range []struct {
		name      string
		results   []Result
		changed   bool
		wantSince map[string]time.Time
		wantOK    map[string]bool
	}{
		{"nothing changed", []Result{{"runtime", true, ""}, {"disk", false, "full"}, {"network", true, ""}}, false,
			map[string]time.Time{"runtime": t0, "disk": t0, "network": t0}, map[string]bool{"runtime": true, "disk": false, "network": true}},
		{"disk recovers", []Result{{"runtime", true, ""}, {"disk", true, ""}, {"network", true, ""}}, true,
			map[string]time.Time{"runtime": t0, "disk": t1, "network": t0}, map[string]bool{"disk": true}},
		{"message changes, ok does not", []Result{{"runtime", true, ""}, {"disk", false, "fuller"}, {"network", true, ""}}, true,
			map[string]time.Time{"disk": t0}, map[string]bool{"disk": false}},
		{"network not judged keeps its last", []Result{{"runtime", true, ""}, {"disk", false, "full"}}, false,
			map[string]time.Time{"network": t0}, map[string]bool{"network": true}},
		{"runtime fails", []Result{{"runtime", false, "down"}, {"disk", false, "full"}, {"network", true, ""}}, true,
			map[string]time.Time{"runtime": t1, "disk": t0}, map[string]bool{"runtime": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, changed := Merge(prev, tc.results, t1)
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			if len(next) != 3 {
				t.Fatalf("next has %d conditions, want 3: %v", len(next), next)
			}
			by := map[string]*berthv1.NodeCondition{}
			for _, c := range next {
				by[c.Type] = c
			}
			for typ, since := range tc.wantSince {
				if got := by[typ].GetSince().AsTime(); !got.Equal(since) {
					t.Errorf("%s since = %v, want %v", typ, got, since)
				}
			}
			for typ, ok := range tc.wantOK {
				if by[typ].GetOk() != ok {
					t.Errorf("%s ok = %v, want %v", typ, by[typ].GetOk(), ok)
				}
			}
		})
	}
	if next, changed := Merge(nil, []Result{{"disk", true, ""}}, t1); !changed || !next[0].GetSince().AsTime().Equal(t1) {
		t.Errorf("first check: changed %v, since %v; want true, %v", changed, next[0].GetSince().AsTime(), t1)
	}
}

// fakeProbes are probes whose answers a test sets.
type fakeProbes struct {
	mu      sync.Mutex
	runtime error
	holders []Holder
	free    uint64
}

func (f *fakeProbes) probes() Probes {
	return Probes{
		RuntimeAddress: "/run/containerd.sock",
		Runtime: func(context.Context) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.runtime
		},
		Network: func(context.Context) (NetworkFacts, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return NetworkFacts{Subnet: netip.MustParsePrefix("10.210.1.0/24"), Own: "berth-abc", Holders: f.holders}, nil
		},
		Disk: func() (DiskFacts, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return DiskFacts{Path: "/data", Total: 10 << 30, Free: f.free, Inodes: 100, FreeInodes: 90}, nil
		},
	}
}

func TestCheckerReportsChanges(t *testing.T) {
	fp := &fakeProbes{free: 5 << 30}
	var got [][]*berthv1.NodeCondition
	c := New(Config{Probes: fp.probes(), DiskFloor: Floor{Amount: 500 << 20}, InodeFloor: Floor{Percent: 5},
		Changed: func(cs []*berthv1.NodeCondition) { got = append(got, cs) }})
	if !c.Check(context.Background()) {
		t.Fatal("the first check reported no change")
	}
	if c.Check(context.Background()) {
		t.Fatal("a second check with the same facts reported a change")
	}
	fp.mu.Lock()
	fp.runtime = errors.New("connection refused")
	fp.holders = []Holder{{Interface: "br-x", Kind: "bridge", Prefix: netip.MustParsePrefix("10.210.1.1/24")}}
	fp.mu.Unlock()
	if !c.Check(context.Background()) {
		t.Fatal("a failing runtime and a foreign bridge reported no change")
	}
	if len(got) != 2 {
		t.Fatalf("Changed called %d times, want 2", len(got))
	}
	failing := map[string]bool{}
	for _, cond := range c.Conditions() {
		if !cond.Ok {
			failing[cond.Type] = true
		}
	}
	if !failing["runtime"] || !failing["network"] || failing["disk"] {
		t.Fatalf("failing conditions %v, want runtime and network", failing)
	}
}

func TestCheckerRunChecksOnKick(t *testing.T) {
	fp := &fakeProbes{free: 5 << 30}
	changes := make(chan []*berthv1.NodeCondition, 4)
	// A period far beyond the test: only the start and the kick check.
	c := New(Config{Probes: fp.probes(), Period: time.Hour, DiskFloor: Floor{Amount: 500 << 20}, Changed: func(cs []*berthv1.NodeCondition) { changes <- cs }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-changes // the check at start
	fp.mu.Lock()
	fp.free = 1 << 20
	fp.mu.Unlock()
	c.Kick()
	select {
	case cs := <-changes:
		for _, cond := range cs {
			if cond.Type == "disk" && cond.Ok {
				t.Fatalf("disk still ok after the kick: %v", cs)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no check after Kick")
	}
}
