package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func putAudit(t *testing.T, s *Store, at time.Time, principal string) *berthv1.AuditRecord {
	t.Helper()
	rec := &berthv1.AuditRecord{Time: timestamppb.New(at), Principal: principal, Method: "Apply"}
	if err := s.PutAudit(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func principals(recs []*berthv1.AuditRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Principal
	}
	return out
}

func TestAuditRecordsSinceAndLimit(t *testing.T) {
	s := newEventStore(t)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// Written out of time order: keys sort by time all the same.
	for _, i := range []int{3, 0, 4, 1, 2} {
		putAudit(t, s, base.Add(time.Duration(i)*time.Minute), string(rune('a'+i)))
	}
	for _, tc := range []struct {
		since time.Time
		limit int
		match func(*berthv1.AuditRecord) bool
		want  []string
	}{
		{time.Time{}, 100, nil, []string{"a", "b", "c", "d", "e"}},
		{base.Add(2 * time.Minute), 100, nil, []string{"c", "d", "e"}},
		{time.Time{}, 2, nil, []string{"d", "e"}},
		{time.Time{}, 2, func(r *berthv1.AuditRecord) bool { return r.Principal != "e" }, []string{"c", "d"}},
	} {
		got, _, err := s.AuditRecords(t.Context(), tc.since, tc.limit, tc.match)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(principals(got), tc.want) {
			t.Errorf("since %v limit %d: %v, want %v", tc.since, tc.limit, principals(got), tc.want)
		}
	}
}

func TestFollowAuditSendsHistoryThenNewRecords(t *testing.T) {
	s := newEventStore(t)
	now := time.Now()
	putAudit(t, s, now.Add(-time.Hour), "old")
	putAudit(t, s, now.Add(-time.Minute), "recent")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- s.FollowAudit(ctx, now.Add(-2*time.Hour), 1, func(r *berthv1.AuditRecord) bool { return r.Principal != "skip" },
			func(r *berthv1.AuditRecord) error { got <- r.Principal; return nil })
	}()
	next := func() string {
		t.Helper()
		select {
		case p := <-got:
			return p
		case err := <-done:
			t.Fatalf("FollowAudit ended: %v", err)
		case <-ctx.Done():
			t.Fatal("no record came")
		}
		return ""
	}
	if p := next(); p != "recent" {
		t.Fatalf("first %q, want the newest of the history", p)
	}
	putAudit(t, s, now, "skip")
	// A long call is recorded with the time it began: still followed.
	putAudit(t, s, now.Add(-3*time.Hour), "new")
	if p := next(); p != "new" {
		t.Fatalf("next %q, want %q", p, "new")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("FollowAudit after cancel: %v", err)
	}
}

func TestDeleteAuditBeforeInsideFence(t *testing.T) {
	s := newEventStore(t)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		putAudit(t, s, base.Add(time.Duration(i)*time.Hour), "p")
	}
	resp, err := s.cli.Put(t.Context(), LeaderPrefix+"term", "me")
	if err != nil {
		t.Fatal(err)
	}
	stale := WithFence(t.Context(), Fence{Key: LeaderPrefix + "term", Revision: resp.Header.Revision - 1})
	if _, err := s.DeleteAuditBefore(stale, base.Add(90*time.Minute)); !errors.Is(err, ErrFenced) {
		t.Fatalf("delete under a lost term: %v, want ErrFenced", err)
	}
	fenced := WithFence(t.Context(), Fence{Key: LeaderPrefix + "term", Revision: resp.Header.Revision})
	n, err := s.DeleteAuditBefore(fenced, base.Add(90*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("delete: %d, %v; want 2 deleted", n, err)
	}
	left, _, err := s.AuditRecords(t.Context(), time.Time{}, 10, nil)
	if err != nil || len(left) != 1 {
		t.Fatalf("left %d records (%v), want 1", len(left), err)
	}
}
