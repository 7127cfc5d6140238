package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/seal"
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

func (p caPersistence) SwapCA(ctx context.Context, old, next *berthv1.ClusterCA) error {
	err := p.s.SwapMessage(ctx, store.CAKey, old, next)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: run the command again", ca.ErrChanged)
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

// migrateAttempts bounds the retries of the migration when another
// server writes the same records meanwhile.
const migrateAttempts = 5

// sealAtRest seals, once, what a cluster made before the key-encryption
// key keeps readable in etcd: the CA's key, in the clear, becomes
// ClusterCA.sealed_key, and the registry passwords, sealed under a key
// derived from the CA's key, are sealed again with kek. Both change in one
// transaction guarded by the records' revisions, so the cluster is never
// half migrated and two servers starting together migrate it once.
// Afterwards it compacts etcd's history, which still holds the old values.
func sealAtRest(ctx context.Context, st *store.Store, kek *seal.Key, log *slog.Logger) error {
	cli := st.Client()
	for attempt := 0; ; attempt++ {
		resp, err := cli.Get(ctx, store.CAKey)
		if err != nil {
			return fmt.Errorf("reading the cluster CA: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return nil // a new cluster: the CA is made sealed
		}
		rec := &berthv1.ClusterCA{}
		if err := proto.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
			return fmt.Errorf("decoding the cluster CA: %w", err)
		}
		if len(rec.GetKey()) == 0 {
			return nil // sealed already
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(store.CAKey), "=", resp.Kvs[0].ModRevision)}
		next := proto.Clone(rec).(*berthv1.ClusterCA)
		if next.SealedKey, err = ca.SealKey(kek, rec.GetClusterId(), rec.GetKey()); err != nil {
			return err
		}
		next.Key = nil
		ops, err := putOp(store.CAKey, next)
		if err != nil {
			return err
		}
		legacy, err := ca.LegacyCredentialKey(rec)
		if err != nil {
			return err
		}
		creds, _, err := store.List(ctx, st, store.RegistriesPrefix, func() *berthv1.RegistryCredential { return &berthv1.RegistryCredential{} })
		if err != nil {
			return err
		}
		resealed := 0
		for _, cr := range creds {
			sealed, err := registry.Reseal(legacy, kek, cr.GetRegistry(), cr.GetSealedSecret())
			if err != nil {
				// It never opened: the same refusal as before, which
				// says to log in again.
				log.Warn("a registry credential could not be sealed again; log in to the registry again", "registry", cr.GetRegistry(), "err", err)
				continue
			}
			key := store.RegistryKey(cr.GetRegistry())
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", cr.GetMeta().GetVersion()))
			out := proto.Clone(cr).(*berthv1.RegistryCredential)
			out.SealedSecret = sealed
			op, err := putOp(key, out)
			if err != nil {
				return err
			}
			ops = append(ops, op...)
			resealed++
		}
		txn, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("sealing the cluster CA key and %d registry credentials: %w", resealed, err)
		}
		if !txn.Succeeded {
			if attempt < migrateAttempts {
				continue // another server got in first: read again
			}
			return errors.New("sealing the cluster CA key: the records kept changing; start the server again")
		}
		log.Info("sealed the cluster CA key and the registry credentials with the key-encryption key", "credentials", resealed)
		// The history still holds the key in the clear until compacted.
		if _, err := cli.Compact(ctx, txn.Header.Revision); err != nil {
			log.Warn("compacting etcd after sealing the CA key; its history keeps the old key until the next compaction", "err", err)
		}
		return nil
	}
}

// putOp is the write of msg at key.
func putOp(key string, msg proto.Message) ([]clientv3.Op, error) {
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", key, err)
	}
	return []clientv3.Op{clientv3.OpPut(key, string(b))}, nil
}
