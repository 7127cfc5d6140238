package controlplane

import (
	"context"
	"errors"
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// caPersistence keeps the cluster CA and join tokens in etcd, so every
// server of the cluster shares them.
type caPersistence struct{ s *store.Store }

var _ ca.Persistence = caPersistence{}

func (p caPersistence) LoadCA(ctx context.Context) (*berthv1.ClusterCA, error) {
	rec := &berthv1.ClusterCA{}
	err := p.s.GetMessage(ctx, store.CAKey, rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return rec, err
}

func (p caPersistence) CreateCA(ctx context.Context, rec *berthv1.ClusterCA) error {
	var txn store.Txn
	txn.Create(store.CAKey, rec)
	_, err := p.s.Commit(ctx, &txn)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("cluster CA: %w", ca.ErrExists)
	}
	return err
}

func (p caPersistence) PutToken(ctx context.Context, rec *berthv1.JoinTokenRecord) error {
	var txn store.Txn
	txn.Put(store.TokenKey(rec.Id), rec)
	_, err := p.s.Commit(ctx, &txn)
	return err
}

func (p caPersistence) ListTokens(ctx context.Context) ([]*berthv1.JoinTokenRecord, error) {
	resp, err := p.s.Client().Get(ctx, store.TokensPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("listing join tokens: %w", err)
	}
	out := make([]*berthv1.JoinTokenRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec := &berthv1.JoinTokenRecord{}
		if err := proto.Unmarshal(kv.Value, rec); err != nil {
			return nil, fmt.Errorf("join token %s: %w", kv.Key, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

func (p caPersistence) DeleteToken(ctx context.Context, id string) error {
	var txn store.Txn
	txn.Delete(store.TokenKey(id), 0)
	_, err := p.s.Commit(ctx, &txn)
	return err
}
