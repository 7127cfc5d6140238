package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// newEventStore is a store on a fresh embedded etcd. The tests of this
// file look inside the recorder, so they live in package store and cannot
// use storetest (which imports it).
func newEventStore(t *testing.T) *Store {
	t.Helper()
	e, err := etcd.StartEmbedded(etcd.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := etcd.Connect(context.Background(), []string{e.Endpoint()}, etcd.ClientTLS{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	s := New(cli)
	t.Cleanup(func() { flush(t, s) })
	return s
}

func flush(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.FlushEvents(ctx); err != nil {
		t.Fatal(err)
	}
}

func event(i int, at time.Time) *berthv1.Event {
	return &berthv1.Event{Kind: EventKindTask, ObjectId: fmt.Sprintf("t%d", i), Action: "fail", Message: fmt.Sprint(i), At: timestamppb.New(at)}
}

func messages(evs []*berthv1.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Message
	}
	return out
}

func TestRecordWritesBatchesWithinTxnLimit(t *testing.T) {
	ctx := context.Background()
	s := newEventStore(t)
	const n = 3*MaxTxnOps + 7
	base := time.Now()
	var want []string
	for i := range n {
		s.RecordEvent(event(i, base.Add(time.Duration(i)*time.Microsecond)))
		want = append(want, fmt.Sprint(i))
	}
	flush(t, s)
	got, err := s.Events(ctx, time.Time{}, n+10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(messages(got), want) {
		t.Fatalf("got %d events %v..., want %d in order", len(got), messages(got)[:min(5, len(got))], n)
	}
	// Each transaction is one revision: none may hold more than etcd's
	// limit, and every event must carry the lease that bounds the history.
	resp, err := s.cli.Get(ctx, EventsPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	perRev := map[int64]int{}
	for _, kv := range resp.Kvs {
		perRev[kv.ModRevision]++
		if kv.Lease == 0 {
			t.Fatalf("event %s has no lease", kv.Key)
		}
	}
	for rev, c := range perRev {
		if c > MaxTxnOps {
			t.Errorf("revision %d wrote %d events, over %d", rev, c, MaxTxnOps)
		}
	}
}

func TestRecordDropsOldestWhenFull(t *testing.T) {
	ctx := context.Background()
	s := newEventStore(t)
	r := &s.events
	// Hold the writer back, as a slow etcd would, by pretending one runs.
	r.mu.Lock()
	r.writing, r.idle = true, make(chan struct{})
	r.mu.Unlock()
	const extra = 10
	base := time.Now()
	for i := range eventQueueLimit + extra {
		s.RecordEvent(event(i, base.Add(time.Duration(i)*time.Microsecond)))
	}
	r.mu.Lock()
	queued, dropped, first := len(r.queue), r.dropped, r.queue[0].Message
	r.mu.Unlock()
	if queued != eventQueueLimit || dropped != extra || first != fmt.Sprint(extra) {
		t.Fatalf("queue holds %d (first %s) with %d dropped, want %d (first %d) with %d dropped",
			queued, first, dropped, eventQueueLimit, extra, extra)
	}
	go s.writeEvents()
	flush(t, s)
	got, err := s.Events(ctx, time.Time{}, 2*eventQueueLimit, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != eventQueueLimit || got[0].Message != fmt.Sprint(extra) {
		t.Fatalf("wrote %d events starting at %q, want %d starting at %q", len(got), got[0].GetMessage(), eventQueueLimit, fmt.Sprint(extra))
	}
}

func TestRecordOnceByID(t *testing.T) {
	ctx := context.Background()
	s := newEventStore(t)
	at := time.Now()
	for range 3 {
		ev := event(1, at)
		ev.Meta = &berthv1.Meta{Id: "t1.restart-delayed"}
		s.RecordEvent(ev)
		flush(t, s)
	}
	// Forgotten by this store (another server, or long after): the same
	// key is written again, so the history still holds one.
	s.events.mu.Lock()
	s.events.seen = nil
	s.events.seenOrder = nil
	s.events.mu.Unlock()
	ev := event(1, at)
	ev.Meta = &berthv1.Meta{Id: "t1.restart-delayed"}
	s.RecordEvent(ev)
	s.Record(ctx, nil, EventKindNode, "n1", "down", "node n1 is down")
	flush(t, s)
	got, err := s.Events(ctx, time.Time{}, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("history holds %v, want one event per id", messages(got))
	}
}

func TestEventsFilters(t *testing.T) {
	ctx := context.Background()
	s := newEventStore(t)
	base := time.Now().Add(-time.Minute)
	for i := range 20 {
		s.RecordEvent(event(i, base.Add(time.Duration(i)*time.Second)))
	}
	flush(t, s)
	even := func(ev *berthv1.Event) bool { return ev.ObjectId[len(ev.ObjectId)-1]%2 == 0 }
	tests := []struct {
		name  string
		since time.Time
		limit int
		match func(*berthv1.Event) bool
		want  []string
	}{
		{"newest, oldest first", time.Time{}, 3, nil, []string{"17", "18", "19"}},
		{"since", base.Add(16 * time.Second), 10, nil, []string{"16", "17", "18", "19"}},
		{"match", time.Time{}, 3, even, []string{"14", "16", "18"}},
		{"match and since", base.Add(15 * time.Second), 10, even, []string{"16", "18"}},
		{"none", base.Add(time.Hour), 10, nil, []string{}},
	}
	for _, tt := range tests {
		got, err := s.Events(ctx, tt.since, tt.limit, tt.match)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(messages(got), tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, messages(got), tt.want)
		}
	}
}

func TestTaskEventAttributes(t *testing.T) {
	tk := &berthv1.Task{Meta: &berthv1.Meta{Id: "t1"}, Namespace: "default", App: "shop", Service: "web", Slot: 2, NodeId: "n1"}
	ev := TaskEvent(tk, "fail", "task web.2 failed", "alpha")
	want := map[string]string{
		AttrNamespace: "default", AttrApp: "shop", AttrService: "web", AttrTask: "t1",
		AttrSlot: "2", AttrNode: "n1", AttrNodeName: "alpha",
	}
	if ev.Kind != EventKindTask || ev.ObjectId != "t1" || len(ev.Attributes) != len(want) {
		t.Fatalf("event %v", ev)
	}
	for k, v := range want {
		if ev.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, ev.Attributes[k], v)
		}
	}
}
