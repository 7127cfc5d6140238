package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestFollowEventsSendsHistoryThenNewEvents(t *testing.T) {
	s := newEventStore(t)
	base := time.Now()
	for i := range 3 {
		s.RecordEvent(event(i, base.Add(time.Duration(i)*time.Millisecond)))
	}
	flush(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	odd := func(ev *berthv1.Event) bool { return ev.Message != "4" }
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- s.FollowEvents(ctx, time.Time{}, 2, odd, func(ev *berthv1.Event) error {
			got <- ev.Message
			if ev.Message == "5" {
				return errStop
			}
			return nil
		})
	}()
	var seen []string
	for len(seen) < 2 {
		seen = append(seen, <-got)
	}
	if want := []string{"1", "2"}; !slices.Equal(seen, want) {
		t.Fatalf("history = %v, want the last two %v", seen, want)
	}
	// Recorded after the history was read: they arrive through the watch,
	// the one the filter refuses excepted.
	for i := 3; i < 6; i++ {
		s.RecordEvent(event(i, base.Add(time.Duration(i)*time.Millisecond)))
	}
	if err := <-done; !errors.Is(err, errStop) {
		t.Fatalf("FollowEvents = %v, want the callback's error", err)
	}
	close(got)
	for m := range got {
		seen = append(seen, m)
	}
	if want := []string{"1", "2", "3", "5"}; !slices.Equal(seen, want) {
		t.Fatalf("followed %v, want %v", seen, want)
	}
}

func TestFollowEventsEndsWithContext(t *testing.T) {
	s := newEventStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.FollowEvents(ctx, time.Time{}, 10, nil, func(*berthv1.Event) error { return nil })
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("FollowEvents after cancel = %v, want nil", err)
	}
}

var errStop = errors.New("stop")
