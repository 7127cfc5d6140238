package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/vulndb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// vulnDBCache is the database a server last read, known by its import:
// each scan asks etcd which import is current (one small read) and reads
// the chunks only when it changed.
type vulnDBCache struct {
	mu       sync.Mutex
	importID string
	db       *vulndb.DB
}

// ImportVulnDB checks every streamed OSV record, then stores them as the
// new database, and rematches the stored scan results against it. A
// record in the wrong format refuses the whole import, naming the entry:
// the database stays as it was.
func (s *Server) ImportVulnDB(stream berthv1.ClusterService_ImportVulnDBServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.GetHeader() == nil {
		return status.Error(codes.InvalidArgument, "an import must start with its header")
	}
	source := first.GetHeader().GetSource()
	var records []*vulndb.Record
	byID := map[string]string{} // record id → entry it came from
	read := func(entries []*berthv1.VulnDBEntry) error {
		for _, e := range entries {
			r, err := vulndb.Parse(e.Data)
			if err != nil {
				return status.Errorf(codes.InvalidArgument, "%s: entry %s %v; nothing was imported", source, e.Name, err)
			}
			if prev, ok := byID[r.ID]; ok {
				return status.Errorf(codes.InvalidArgument, "%s: entry %s holds record %s, which entry %s holds too; an OSV export has each record once; nothing was imported", source, e.Name, r.ID, prev)
			}
			byID[r.ID] = e.Name
			records = append(records, r)
		}
		return nil
	}
	if err := read(first.Entries); err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := read(msg.Entries); err != nil {
			return err
		}
	}
	if len(records) == 0 {
		return status.Errorf(codes.InvalidArgument, "%s holds no OSV records; import an OSV export (a zip of JSON records, or a folder of them); nothing was imported", source)
	}
	st, err := s.storeVulnDB(ctx, source, records)
	if err != nil {
		return err
	}
	db := vulndb.New(st.Generation, records)
	s.vulnDB.mu.Lock()
	s.vulnDB.importID, s.vulnDB.db = st.ImportId, db
	s.vulnDB.mu.Unlock()
	st.Rescanned = int64(s.rematchAll(ctx, db))
	s.log.Info("vulnerability database imported", "source", source, "records", st.Records, "generation", st.Generation, "rescanned", st.Rescanned)
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: "vulndb", Action: "import",
		Message: fmt.Sprintf("vulnerability database %d imported from %s: %d records (%s); %d scan results rematched", st.Generation, source, st.Records, ecosystemWords(st.Ecosystems), st.Rescanned)})
	return stream.SendAndClose(st)
}

// storeVulnDB writes records as the next generation: its chunks first,
// then the status that makes them current, guarded so that of two
// imports at once one wins and the other writes nothing that stays.
func (s *Server) storeVulnDB(ctx context.Context, source string, records []*vulndb.Record) (*berthv1.VulnDBStatus, error) {
	chunks, err := vulndb.Encode(records)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%s: %v; nothing was imported", source, err)
	}
	cur, err := s.cfg.Store.VulnDBStatus(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	now := timestamppb.Now()
	st := &berthv1.VulnDBStatus{
		Meta:       &berthv1.Meta{Id: store.NewID(), CreatedAt: now, UpdatedAt: now},
		Generation: cur.GetGeneration() + 1,
		Records:    int64(len(records)),
		Ecosystems: map[string]int64{},
		ImportedAt: now,
		Source:     source,
		Chunks:     int64(len(chunks)),
	}
	st.ImportId = st.Meta.Id
	var newest time.Time
	for _, r := range records {
		seen := map[string]bool{}
		for _, a := range r.Affected {
			base, _ := vulndb.Ecosystem(a.Package.Ecosystem)
			if base != "" && !seen[base] {
				seen[base] = true
				st.Ecosystems[base]++
			}
		}
		if r.Modified.After(newest) {
			newest = r.Modified
		}
	}
	st.NewestModified = timestamppb.New(newest)
	stored := make([]*berthv1.VulnDBChunk, len(chunks))
	for i, c := range chunks {
		stored[i] = &berthv1.VulnDBChunk{Generation: st.Generation, Count: int32(c.Count), RecordsGzip: c.Gzip}
		st.StoredBytes += int64(len(c.Gzip))
	}
	drop := func() {
		if err := s.cfg.Store.DeleteVulnDBChunks(context.WithoutCancel(ctx), st.ImportId); err != nil {
			s.log.Warn("removing the chunks of a failed import", "err", err)
		}
	}
	if err := s.cfg.Store.PutVulnDBChunks(ctx, st.ImportId, stored); err != nil {
		drop()
		return nil, storeError(err)
	}
	rev, err := s.cfg.Store.CommitVulnDB(ctx, st, cur.GetMeta().GetVersion())
	if errors.Is(err, store.ErrConflict) {
		drop()
		return nil, status.Error(codes.Aborted, "another import of the vulnerability database finished first; run this one again to replace it")
	}
	if err != nil {
		drop()
		return nil, storeError(err)
	}
	st.Meta.Version = rev
	if err := s.cfg.Store.DeleteVulnDBChunks(ctx, cur.GetImportId()); err != nil {
		s.log.Warn("removing the previous vulnerability database", "err", err)
	}
	return st, nil
}

// ecosystemWords lists ecosystems with their counts: "Debian 120, Go 4".
func ecosystemWords(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// GetVulnDBStatus describes the current database; NotFound when none was
// imported.
func (s *Server) GetVulnDBStatus(ctx context.Context, _ *berthv1.GetVulnDBStatusRequest) (*berthv1.VulnDBStatus, error) {
	st, err := s.cfg.Store.VulnDBStatus(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	if st == nil {
		return nil, status.Error(codes.NotFound, "no vulnerability database was imported; load one with `berth vulndb import FILE.zip|DIR`")
	}
	return st, nil
}

// currentVulnDB returns the current database, reading it from the store
// when another server imported it since this one last read; nil when
// none was imported.
func (s *Server) currentVulnDB(ctx context.Context) (*vulndb.DB, error) {
	st, err := s.cfg.Store.VulnDBStatus(ctx)
	if err != nil || st == nil {
		return nil, err
	}
	c := &s.vulnDB
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.importID == st.ImportId && c.db != nil {
		return c.db, nil
	}
	chunks, err := s.cfg.Store.VulnDBChunks(ctx, st.ImportId)
	if err != nil {
		return nil, err
	}
	var records []*vulndb.Record
	for _, ch := range chunks {
		rs, err := vulndb.Decode(ch.RecordsGzip)
		if err != nil {
			return nil, err
		}
		records = append(records, rs...)
	}
	if int64(len(records)) != st.Records {
		// The import was replaced while it was read: its chunks went.
		return nil, fmt.Errorf("the vulnerability database changed while it was read (%d of %d records); try again", len(records), st.Records)
	}
	c.importID, c.db = st.ImportId, vulndb.New(st.Generation, records)
	return c.db, nil
}

// rematchAll matches every stored SBOM against db and stores the new
// findings; it returns how many results it rewrote.
func (s *Server) rematchAll(ctx context.Context, db *vulndb.DB) int {
	results, err := s.cfg.Store.ScanResults(ctx)
	if err != nil {
		s.log.Warn("rematching scan results after an import; they are rematched when next read", "err", err)
		return 0
	}
	n := 0
	for _, r := range results {
		if r.DbGeneration == db.Generation {
			continue
		}
		rematch(r, db)
		if err := s.cfg.Store.PutScanResult(ctx, r); err != nil {
			s.log.Warn("storing a rematched scan result; it is rematched when next read", "digest", r.Digest, "err", err)
			continue
		}
		n++
	}
	return n
}

// rematch sets r's findings to what db says of its SBOM.
func rematch(r *berthv1.ScanResult, db *vulndb.DB) {
	r.Findings, r.DbGeneration, r.MatchedAt = nil, 0, timestamppb.Now()
	if db != nil {
		r.Findings, r.DbGeneration = db.Match(r.Sbom), db.Generation
	}
}
