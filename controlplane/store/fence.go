package store

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrFenced means a write was refused because the leadership it was made
// under has ended: another server leads now and this one must stop.
var ErrFenced = errors.New("no longer the leader")

// Fence is a leadership term: the election key this server created and
// the revision it created it at. While the key exists at that revision the
// term lasts; a new leader's key is another.
type Fence struct {
	Key      string
	Revision int64
}

type fenceKey struct{}

// WithFence returns ctx carrying f: every transaction committed with it
// writes only while f's term lasts, so a deposed leader that has not yet
// noticed cannot overwrite what the new one decided.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// commitTxn runs cmps and ops as one transaction, inside ctx's fence when
// it has one. It reports whether cmps held; a fence that no longer holds
// is ErrFenced.
func (s *Store) commitTxn(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (*clientv3.TxnResponse, bool, error) {
	f, fenced := FenceFrom(ctx)
	if !fenced {
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return nil, false, err
		}
		return resp, resp.Succeeded, nil
	}
	// The guarded writes nest inside the fence, so a lost term is told
	// apart from a lost race, and the fence takes none of etcd's limit on
	// comparisons per transaction.
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Revision)).
		Then(clientv3.OpTxn(cmps, ops, nil)).
		Commit()
	if err != nil {
		return nil, false, err
	}
	if !resp.Succeeded {
		return resp, false, ErrFenced
	}
	return resp, resp.Responses[0].GetResponseTxn().GetSucceeded(), nil
}
