package apiserver

import (
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/metadata"
)

const (
	// defaultAuditWindow is how far back Audit reads when the request
	// names no time.
	defaultAuditWindow = 24 * time.Hour
	// defaultAuditLimit is how many records Audit sends first when the
	// request names no limit; maxAuditLimit caps what it may ask for.
	defaultAuditLimit = 1000
	maxAuditLimit     = 100000
)

// Audit sends the newest audit records that match the request, oldest
// first; with follow, then each matching record as it is written, until
// the client goes away.
func (s *Server) Audit(req *berthv1.AuditRequest, stream berthv1.ClusterService_AuditServer) error {
	since := time.Now().Add(-defaultAuditWindow)
	if req.Since != nil {
		since = req.Since.AsTime()
	}
	limit := int(req.Limit)
	if limit == 0 {
		limit = defaultAuditLimit
	}
	limit = min(limit, maxAuditLimit)
	match := auditFilter(req)
	if !req.Follow {
		records, _, err := s.cfg.Store.AuditRecords(stream.Context(), since, limit, match)
		if err != nil {
			return storeError(err)
		}
		for _, rec := range records {
			if err := stream.Send(rec); err != nil {
				return err
			}
		}
		return nil
	}
	// Headers at once: an HTTP client sees the stream open even when no
	// record matches yet.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	err := s.cfg.Store.FollowAudit(stream.Context(), since, limit, match, stream.Send)
	if err != nil && stream.Context().Err() == nil {
		return storeError(err)
	}
	return nil
}

// auditFilter is what a record must match to answer req; nil matches
// everything. A principal with a kind ("user/alice") matches exactly; a
// bare name ("alice") matches that name of any kind.
func auditFilter(req *berthv1.AuditRequest) func(*berthv1.AuditRecord) bool {
	who, ns := req.Principal, req.Namespace
	if who == "" && ns == "" {
		return nil
	}
	return func(rec *berthv1.AuditRecord) bool {
		if ns != "" && rec.Namespace != ns {
			return false
		}
		if who == "" || rec.Principal == who {
			return true
		}
		if strings.Contains(who, "/") {
			return false
		}
		_, name, ok := strings.Cut(rec.Principal, "/")
		return ok && name == who
	}
}
