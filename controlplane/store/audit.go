package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The audit log: one AuditRecord per call that changed (or tried to
// change) something, at AuditPrefix + id. An id is the record's time in
// zero-padded unix nanoseconds and a random suffix, so keys sort by time:
// "since" is a range start, and retention one range delete. Unlike events,
// records are written one per transaction and at once, not queued, and
// live on no lease: they must outlast a restored etcd and only the
// retention sweep removes them.

// auditReadPage is how many records one range request reads.
const auditReadPage = 1000

// NewAuditID returns an id for a record made at t: ids sort by time, and
// two records of the same instant differ by their random suffix.
func NewAuditID(t time.Time) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: reading random bytes: %v", err))
	}
	return auditTimeKey(t) + "-" + hex.EncodeToString(b[:])
}

// auditTimeKey is the part of an id that sorts by time; the smallest key
// of records at or after t.
func auditTimeKey(t time.Time) string {
	if t.Before(time.Unix(0, 0)) {
		t = time.Unix(0, 0)
	}
	return fmt.Sprintf("%020d", t.UnixNano())
}

// AuditKey is where the record with id is stored.
func AuditKey(id string) string { return AuditPrefix + id }

// PutAudit writes rec in a transaction of its own, giving it an id from
// its time (now when unset) when it has none.
func (s *Store) PutAudit(ctx context.Context, rec *berthv1.AuditRecord) error {
	if rec.Time == nil {
		rec.Time = timestamppb.Now()
	}
	if rec.Id == "" {
		rec.Id = NewAuditID(rec.Time.AsTime())
	}
	txn := &Txn{}
	txn.Create(AuditKey(rec.Id), rec)
	if _, err := s.Commit(ctx, txn); err != nil {
		return fmt.Errorf("writing audit record %s: %w", rec.Id, err)
	}
	return nil
}

// AuditRecords returns the newest limit records at or after since for
// which match (nil for all) holds, oldest first, with the revision they
// were read at.
func (s *Store) AuditRecords(ctx context.Context, since time.Time, limit int, match func(*berthv1.AuditRecord) bool) ([]*berthv1.AuditRecord, int64, error) {
	if limit <= 0 {
		rev, err := s.Revision(ctx)
		return nil, rev, err
	}
	key := AuditPrefix + auditTimeKey(since)
	end := clientv3.GetPrefixRangeEnd(AuditPrefix)
	// Read forward in pages and keep the last limit matches in a ring:
	// etcd honours a limit only in ascending key order.
	ring := make([]*berthv1.AuditRecord, 0, min(limit, auditReadPage))
	next := 0
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(auditReadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, key, opts...)
		if err != nil {
			return nil, 0, fmt.Errorf("reading the audit log: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			rec := &berthv1.AuditRecord{}
			if err := proto.Unmarshal(kv.Value, rec); err != nil {
				return nil, 0, fmt.Errorf("%s: decoding: %w", kv.Key, err)
			}
			if match != nil && !match(rec) {
				continue
			}
			if len(ring) < limit {
				ring = append(ring, rec)
				continue
			}
			ring[next] = rec
			next = (next + 1) % limit
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return append(ring[next:], ring[:next]...), rev, nil
}

// FollowAudit calls fn with the records AuditRecords returns, then with
// each matching record written after them, as it is written, whatever its
// time (a long call is recorded when it ends, with the time it began). It
// returns when ctx ends (nil), when fn fails (its error) or when the watch
// fails. The watch starts at the revision after the one the records were
// read at, so none is missed or sent twice between the two.
func (s *Store) FollowAudit(ctx context.Context, since time.Time, limit int, match func(*berthv1.AuditRecord) bool, fn func(*berthv1.AuditRecord) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watch
	history, rev, err := s.AuditRecords(ctx, since, limit, match)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for _, rec := range history {
		if err := fn(rec); err != nil {
			return err
		}
	}
	// Deletes are the retention sweep: old records leaving the log.
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), AuditPrefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("following the audit log: %w", err)
		}
		for _, we := range resp.Events {
			rec := &berthv1.AuditRecord{}
			if err := proto.Unmarshal(we.Kv.Value, rec); err != nil {
				return fmt.Errorf("%s: decoding: %w", we.Kv.Key, err)
			}
			if match != nil && !match(rec) {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("following the audit log: the watch ended; try again")
}

// DeleteAuditBefore removes every record made before cutoff, in one range
// delete, and returns how many went. Inside a leader's fence it deletes
// only while the term lasts.
func (s *Store) DeleteAuditBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	end := AuditPrefix + auditTimeKey(cutoff)
	op := clientv3.OpDelete(AuditPrefix, clientv3.WithRange(end))
	start := time.Now()
	resp, _, err := s.commitTxn(ctx, nil, []clientv3.Op{op})
	if errors.Is(err, ErrFenced) {
		s.observeTxn(start, txnFenced)
		return 0, err
	}
	if err != nil {
		s.observeTxn(start, txnError)
		return 0, fmt.Errorf("removing audit records before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	s.observeTxn(start, txnCommitted)
	var n int64
	for _, r := range resp.Responses {
		if d := r.GetResponseDeleteRange(); d != nil {
			n += d.Deleted
		}
		// Inside a fence the delete is nested one level down.
		if t := r.GetResponseTxn(); t != nil {
			for _, rr := range t.Responses {
				n += rr.GetResponseDeleteRange().GetDeleted()
			}
		}
	}
	return n, nil
}
