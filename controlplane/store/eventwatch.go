package store

import (
	"context"
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// FollowEvents calls fn with the newest limit events at or after since
// (all of them when since is zero) for which match (nil for all) holds,
// oldest first, as Events returns them; then with each matching event
// written to the history after them, as it is written. It returns when
// ctx ends (nil), when fn fails (its error) or when the watch fails.
//
// The new events come from an etcd watch on the history's prefix that
// starts at the revision after the one the history was read at, so none
// is missed or sent twice between the two.
func (s *Store) FollowEvents(ctx context.Context, since time.Time, limit int, match func(*berthv1.Event) bool, fn func(*berthv1.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watch
	var (
		history []*berthv1.Event
		rev     int64
		err     error
	)
	if limit > 0 {
		history, rev, err = s.eventsAt(ctx, since, limit, match)
	} else {
		rev, err = s.Revision(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for _, ev := range history {
		if err := fn(ev); err != nil {
			return err
		}
	}
	// Deletes are the lease expiring: old events leaving the history.
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), EventsPrefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("following the event history: %w", err)
		}
		for _, we := range resp.Events {
			ev := &berthv1.Event{}
			if err := decode(we.Kv.Value, we.Kv.ModRevision, ev); err != nil {
				return fmt.Errorf("%s: %w", we.Kv.Key, err)
			}
			if !since.IsZero() && ev.GetAt().AsTime().Before(since) {
				continue
			}
			if match != nil && !match(ev) {
				continue
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("following the event history: the watch ended; try again")
}
