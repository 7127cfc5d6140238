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
	toks, _, err := store.ListMessages(ctx, p.s, store.TokensPrefix, func() *berthv1.JoinTokenRecord { return &berthv1.JoinTokenRecord{} })
	if err != nil {
		return nil, fmt.Errorf("listing join tokens: %w", err)
	}
	return toks, nil
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
	for attempt := 0; ; attempt++ {
		rec := &berthv1.ClusterCA{}
		caVersion, err := st.GetMessageVersion(ctx, store.CAKey, rec)
		if errors.Is(err, store.ErrNotFound) {
			return nil // a new cluster: the CA is made sealed
		}
		if err != nil {
			return fmt.Errorf("reading the cluster CA: %w", err)
		}
		if len(rec.GetKey()) == 0 {
			return nil // sealed already
		}
		next := proto.Clone(rec).(*berthv1.ClusterCA)
		if next.SealedKey, err = ca.SealKey(kek, rec.GetClusterId(), rec.GetKey()); err != nil {
			return err
		}
		next.Key = nil
		var txn store.Txn
		txn.Guard(store.CAKey, caVersion)
		txn.Put(store.CAKey, next)
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
			out := proto.Clone(cr).(*berthv1.RegistryCredential)
			out.SealedSecret = sealed
			txn.Update(store.RegistryKey(cr.GetRegistry()), out)
			resealed++
		}
		rev, err := st.Commit(ctx, &txn)
		if errors.Is(err, store.ErrConflict) {
			if attempt < migrateAttempts {
				continue // another server got in first: read again
			}
			return errors.New("sealing the cluster CA key: the records kept changing; start the server again")
		}
		if err != nil {
			return fmt.Errorf("sealing the cluster CA key and %d registry credentials: %w", resealed, err)
		}
		log.Info("sealed the cluster CA key and the registry credentials with the key-encryption key", "credentials", resealed)
		// The history still holds the key in the clear until compacted.
		if err := st.Compact(ctx, rev); err != nil {
			log.Warn("the store's history keeps the old CA key until the next compaction", "err", err)
		}
		return nil
	}
}
