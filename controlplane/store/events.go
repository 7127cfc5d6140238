package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// eventTTL bounds the event history: events live on a lease and etcd
// forgets them when it expires.
const eventTTL = time.Hour

// eventLease hands out the lease events are written with; one lease serves
// a stretch of time so that writing an event costs no extra round trip.
type eventLease struct {
	mu      sync.Mutex
	id      clientv3.LeaseID
	expires time.Time
}

// RecordEvent appends an event to the bounded history.
func (s *Store) RecordEvent(ctx context.Context, ev *berthv1.Event) error {
	lease := &s.events
	lease.mu.Lock()
	if time.Until(lease.expires) < eventTTL/2 {
		resp, err := s.cli.Grant(ctx, int64((eventTTL * 3 / 2).Seconds()))
		if err != nil {
			lease.mu.Unlock()
			return fmt.Errorf("event lease: %w", err)
		}
		lease.id, lease.expires = resp.ID, time.Now().Add(eventTTL*3/2)
	}
	id := lease.id
	lease.mu.Unlock()
	now := time.Now()
	if ev.At == nil {
		ev.At = timestamppb.New(now)
	}
	if ev.Meta == nil {
		ev.Meta = &berthv1.Meta{Id: NewID()}
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s%020d-%s", EventsPrefix, now.UnixNano(), ev.Meta.Id[:6])
	_, err = s.cli.Put(ctx, key, string(b), clientv3.WithLease(id))
	return err
}

// RecentEvents returns up to limit of the newest events, oldest first.
func (s *Store) RecentEvents(ctx context.Context, limit int64) ([]*berthv1.Event, error) {
	resp, err := s.cli.Get(ctx, EventsPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	out := make([]*berthv1.Event, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		ev := &berthv1.Event{}
		if err := decode(kv.Value, kv.ModRevision, ev); err != nil {
			return nil, err
		}
		out[len(out)-1-i] = ev
	}
	return out, nil
}

// Record appends an event, logging rather than failing when it cannot: the
// history describes changes, it is never a reason to fail one.
func (s *Store) Record(ctx context.Context, log *slog.Logger, kind, objectID, action, message string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.RecordEvent(ctx, &berthv1.Event{Kind: kind, ObjectId: objectID, Action: action, Message: message})
	if err != nil {
		log.Warn("recording an event", "kind", kind, "object", objectID, "action", action, "err", err)
	}
}
