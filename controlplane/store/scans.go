package store

import (
	"context"
	"errors"
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// Vulnerability scanning keys. The database is written as chunks under
// a prefix of its own import, then made current by one guarded write of
// VulnDBStatusKey: an import that fails half way changes nothing, and
// servers always read one whole database.
const (
	VulnDBStatusKey    = Root + "vulndb/current"
	VulnDBChunksPrefix = Root + "vulndb/chunks/"
	// ScansPrefix holds one ScanResult per image digest.
	ScansPrefix = Root + "scans/"
)

// VulnDBImportPrefix holds the chunks of import id.
func VulnDBImportPrefix(id string) string { return VulnDBChunksPrefix + id + "/" }

// ScanKey is where the scan result of an image digest lives.
func ScanKey(digest string) string { return ScansPrefix + digest }

// VulnDBStatus returns the current database's status, or nil when none
// was imported.
func (s *Store) VulnDBStatus(ctx context.Context) (*berthv1.VulnDBStatus, error) {
	var st berthv1.VulnDBStatus
	err := s.Get(ctx, VulnDBStatusKey, &st)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// PutVulnDBChunks writes the chunks of import id, one a transaction:
// each is close to etcd's request limit.
func (s *Store) PutVulnDBChunks(ctx context.Context, id string, chunks []*berthv1.VulnDBChunk) error {
	for i, c := range chunks {
		txn := &Txn{}
		txn.Put(fmt.Sprintf("%s%06d", VulnDBImportPrefix(id), i), c)
		if _, err := s.Commit(ctx, txn); err != nil {
			return fmt.Errorf("writing chunk %d of %d of the vulnerability database: %w", i+1, len(chunks), err)
		}
	}
	return nil
}

// CommitVulnDB makes st the current database if the current one is still
// at version (0: none), else fails with ErrConflict.
func (s *Store) CommitVulnDB(ctx context.Context, st *berthv1.VulnDBStatus, version int64) (int64, error) {
	txn := &Txn{}
	txn.Guard(VulnDBStatusKey, version)
	txn.Put(VulnDBStatusKey, st)
	return s.Commit(ctx, txn)
}

// DeleteVulnDBChunks removes the chunks of import id.
func (s *Store) DeleteVulnDBChunks(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if _, err := s.cli.Delete(ctx, VulnDBImportPrefix(id), clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("removing the chunks of vulnerability database %s: %w", id, err)
	}
	return nil
}

// chunkPage is how many chunks one read takes: each is up to a MiB.
const chunkPage = 8

// VulnDBChunks reads the chunks of import id, in order.
func (s *Store) VulnDBChunks(ctx context.Context, id string) ([]*berthv1.VulnDBChunk, error) {
	prefix := VulnDBImportPrefix(id)
	key, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	var out []*berthv1.VulnDBChunk
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(chunkPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, key, opts...)
		if err != nil {
			return nil, fmt.Errorf("reading the vulnerability database: %w", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			var c berthv1.VulnDBChunk
			if err := proto.Unmarshal(kv.Value, &c); err != nil {
				return nil, fmt.Errorf("%s: %w", kv.Key, err)
			}
			out = append(out, &c)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// ScanResult returns the stored result of digest, or nil.
func (s *Store) ScanResult(ctx context.Context, digest string) (*berthv1.ScanResult, error) {
	var r berthv1.ScanResult
	err := s.Get(ctx, ScanKey(digest), &r)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// PutScanResult writes r under its digest, replacing what was there.
func (s *Store) PutScanResult(ctx context.Context, r *berthv1.ScanResult) error {
	txn := &Txn{}
	txn.Put(ScanKey(r.Digest), r)
	_, err := s.Commit(ctx, txn)
	return err
}

// ScanResults lists every stored scan result.
func (s *Store) ScanResults(ctx context.Context) ([]*berthv1.ScanResult, error) {
	out, _, err := List(ctx, s, ScansPrefix, func() *berthv1.ScanResult { return &berthv1.ScanResult{} })
	return out, err
}
