package apiserver

import (
	"context"
	"sort"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// recordBuild notes the digest a build made for each of its tags: apply
// pins these tags to it (see resolveDigest). A failure to record is
// logged, not returned: the image is built, and the apply that uses it
// says that the tag is not pinned.
func (s *Server) recordBuild(ctx context.Context, nodeID string, tags []string, res *berthv1.BuildResult) {
	if imageref.ValidDigest(res.GetDigest()) != nil {
		return
	}
	var recs []*berthv1.ImageRecord
	for _, t := range append([]string{res.GetImage()}, tags...) {
		full, err := imageref.Normalize(t)
		if err != nil {
			continue
		}
		recs = append(recs, &berthv1.ImageRecord{Image: full, Digest: res.Digest, Origin: berthv1.ImageOrigin_IMAGE_ORIGIN_BUILD, NodeId: nodeID, RecordedAt: timestamppb.Now()})
	}
	s.putImageRecords(ctx, dedupRecords(recs))
}

// recordImport notes the digest of each image an import loaded. When the
// nodes that loaded one archive disagree about a name's digest, that name
// is not recorded: no node decides alone what a tag stands for.
func (s *Server) recordImport(ctx context.Context, results []*berthv1.NodeImportResult) {
	byName := map[string]*berthv1.ImageRecord{}
	conflict := map[string]bool{}
	for _, r := range results {
		if r.GetError() != "" {
			continue
		}
		for _, im := range r.GetImages() {
			full, err := imageref.Normalize(im.GetName())
			if err != nil || im.GetDigest() == "" || imageref.ValidDigest(im.GetDigest()) != nil {
				continue
			}
			if prev := byName[full]; prev != nil {
				if prev.Digest != im.Digest {
					conflict[full] = true
				}
				continue
			}
			byName[full] = &berthv1.ImageRecord{Image: full, Digest: im.Digest, Origin: berthv1.ImageOrigin_IMAGE_ORIGIN_IMPORT, NodeId: r.GetNodeId(), RecordedAt: timestamppb.Now()}
		}
	}
	var recs []*berthv1.ImageRecord
	for name, rec := range byName {
		if conflict[name] {
			s.log.Warn("image import: nodes loaded different digests under one name; not pinning it", "image", name)
			continue
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Image < recs[j].Image })
	s.putImageRecords(ctx, recs)
}

func (s *Server) putImageRecords(ctx context.Context, recs []*berthv1.ImageRecord) {
	if len(recs) == 0 || s.cfg.Store == nil {
		return
	}
	// The caller's stream may be ending; the record must still land.
	if err := s.cfg.Store.PutImageRecords(context.WithoutCancel(ctx), recs); err != nil {
		s.log.Warn("recording the digests of images the cluster made", "images", len(recs), "err", err)
		return
	}
	for _, r := range recs {
		s.log.Info("image recorded", "image", r.Image, "digest", r.Digest, "origin", r.Origin, "node", r.NodeId)
	}
}

// dedupRecords drops records of a name already seen.
func dedupRecords(recs []*berthv1.ImageRecord) []*berthv1.ImageRecord {
	seen := map[string]bool{}
	out := recs[:0]
	for _, r := range recs {
		if !seen[r.Image] {
			seen[r.Image] = true
			out = append(out, r)
		}
	}
	return out
}
