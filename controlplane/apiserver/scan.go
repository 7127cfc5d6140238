package apiserver

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/api/nodestate"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/vulndb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Scan makes or reuses the SBOM of an image, matches it against the
// current database, stores the result under the image's digest and says
// what the namespace's gate would refuse.
func (s *Server) Scan(ctx context.Context, req *berthv1.ScanRequest) (*berthv1.ScanResponse, error) {
	image, err := normalizedImage(req.Image)
	if err != nil {
		return nil, err
	}
	dgst, err := s.resolveDigest(ctx, image)
	if err != nil {
		dgst = "" // the node scans what the tag names where it is
	}
	res, err := s.scan(ctx, image, dgst, req.Node, req.Fresh)
	if err != nil {
		return nil, err
	}
	gate, _, err := s.scanGate(ctx, namespaceOf(req.Namespace))
	if err != nil {
		return nil, storeError(err)
	}
	resp := &berthv1.ScanResponse{Result: res, Blocked: vulndb.Blocked(res.Findings, gate, nil)}
	if gate != berthv1.Severity_SEVERITY_UNSPECIFIED {
		resp.Gate = vulndb.SeverityName(gate)
	}
	return resp, nil
}

// ScanImage scans image (pinned to digest when given; on node when node
// is not empty, else on a ready node), stores the result, and returns an
// error naming the findings that namespace's gate refuses; nil when the
// gate lets the image through. Automated builds call it after a build.
func (s *Server) ScanImage(ctx context.Context, namespace, image, digest, node string) error {
	full, err := normalizedImage(image)
	if err != nil {
		return err
	}
	res, err := s.scan(ctx, full, digest, node, false)
	if err != nil {
		return err
	}
	ns := namespaceOf(namespace)
	gate, where, err := s.scanGate(ctx, ns)
	if err != nil {
		return storeError(err)
	}
	if blocked := vulndb.Blocked(res.Findings, gate, nil); len(blocked) > 0 {
		return status.Errorf(codes.FailedPrecondition, "image %s (%s) has %s", full, res.Digest, blockedWords(blocked, gate, where))
	}
	return nil
}

// GetScanResult returns the stored result of an image (reference or
// digest), rematched first when the database is newer than it.
func (s *Server) GetScanResult(ctx context.Context, req *berthv1.GetScanResultRequest) (*berthv1.ScanResult, error) {
	dgst := req.Image
	if !strings.HasPrefix(dgst, "sha256:") {
		image, err := normalizedImage(req.Image)
		if err != nil {
			return nil, err
		}
		if dgst, err = s.resolveDigest(ctx, image); err != nil {
			return nil, status.Errorf(codes.NotFound, "image %s has no known digest (%v); scan it with `berth scan %s`", req.Image, err, req.Image)
		}
	}
	r, err := s.cfg.Store.ScanResult(ctx, dgst)
	if err != nil {
		return nil, storeError(err)
	}
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "image %s (%s) was not scanned; scan it with `berth scan %s`", req.Image, dgst, req.Image)
	}
	return s.fresh(ctx, r, false)
}

// ListScanResults sums up every stored result.
func (s *Server) ListScanResults(ctx context.Context, _ *berthv1.ListScanResultsRequest) (*berthv1.ListScanResultsResponse, error) {
	results, err := s.cfg.Store.ScanResults(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	out := &berthv1.ListScanResultsResponse{}
	for _, r := range results {
		if r, err = s.fresh(ctx, r, false); err != nil {
			return nil, err
		}
		out.Results = append(out.Results, ScanSummary(r))
	}
	return out, nil
}

// ScanSummary counts a result's findings by severity.
func ScanSummary(r *berthv1.ScanResult) *berthv1.ScanSummary {
	sum := &berthv1.ScanSummary{Digest: r.Digest, Images: r.Images, Packages: int64(len(r.GetSbom().GetPackages())), Counts: map[string]int64{},
		DbGeneration: r.DbGeneration, MatchedAt: r.MatchedAt}
	for _, f := range r.Findings {
		sum.Counts[vulndb.SeverityName(f.Severity)]++
	}
	return sum
}

// fresh rematches r when the current database is not the one it was
// matched against (an import rematches every stored result, but one
// that failed to store is caught up here), and with keep stores it: only
// callers that may change things store, reads answer from memory.
func (s *Server) fresh(ctx context.Context, r *berthv1.ScanResult, keep bool) (*berthv1.ScanResult, error) {
	db, err := s.currentVulnDB(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading the vulnerability database: %v", err)
	}
	if db == nil || db.Generation == r.DbGeneration {
		return r, nil
	}
	rematch(r, db)
	if !keep {
		return r, nil
	}
	if err := s.cfg.Store.PutScanResult(ctx, r); err != nil {
		s.log.Warn("storing a rematched scan result", "digest", r.Digest, "err", err)
	}
	return r, nil
}

// scan returns the result of image: the stored one of digest when there
// is one (rematched if the database changed) unless fresh is asked, else
// a new SBOM from a node, matched and stored.
func (s *Server) scan(ctx context.Context, image, dgst, nodeRef string, fresh bool) (*berthv1.ScanResult, error) {
	if dgst != "" && !fresh {
		r, err := s.cfg.Store.ScanResult(ctx, dgst)
		if err != nil {
			return nil, storeError(err)
		}
		if r != nil {
			if slices.Contains(r.Images, image) {
				return s.fresh(ctx, r, true)
			}
			// Known under one more name: matched again and stored.
			r.Images = append(r.Images, image)
			db, err := s.currentVulnDB(ctx)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "reading the vulnerability database: %v", err)
			}
			rematch(r, db)
			if err := s.cfg.Store.PutScanResult(ctx, r); err != nil {
				return nil, storeError(err)
			}
			return r, nil
		}
	}
	n, err := s.scanNode(nodeRef, image, dgst)
	if err != nil {
		return nil, err
	}
	cli, err := s.cfg.Nodes.Client(n)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "scan on node %s: %v", n.Name, err)
	}
	resp, err := cli.Sbom(ctx, &berthv1.NodeSbomRequest{Image: image, Digest: dgst, Source: s.imageSource(image, dgst, n.GetMeta().GetId())})
	if err != nil {
		return nil, status.Errorf(status.Code(err), "scan of %s on node %s: %s", image, n.Name, status.Convert(err).Message())
	}
	sbom := resp.GetSbom()
	if sbom.GetDigest() == "" {
		return nil, status.Errorf(codes.Internal, "node %s gave no digest for image %s", n.Name, image)
	}
	r, err := s.cfg.Store.ScanResult(ctx, sbom.Digest)
	if err != nil {
		return nil, storeError(err)
	}
	if r == nil {
		r = &berthv1.ScanResult{Meta: &berthv1.Meta{CreatedAt: timestamppb.Now()}, Digest: sbom.Digest}
	}
	if !slices.Contains(r.Images, image) {
		r.Images = append(r.Images, image)
	}
	r.Sbom = sbom
	db, err := s.currentVulnDB(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading the vulnerability database: %v", err)
	}
	rematch(r, db)
	r.Meta.UpdatedAt = timestamppb.Now()
	if err := s.cfg.Store.PutScanResult(ctx, r); err != nil {
		return nil, storeError(err)
	}
	s.log.Info("image scanned", "image", image, "digest", r.Digest, "node", n.Name, "packages", len(sbom.Packages), "findings", len(r.Findings))
	return r, nil
}

// scanNode picks the node that reads an image: the one named, which must
// be ready; else a ready node that holds the digest or the image, else
// any ready node (it pulls the image).
func (s *Server) scanNode(ref, image, dgst string) (*berthv1.Node, error) {
	if ref != "" {
		n, ok := s.findNode(ref)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", ref)
		}
		if !nodestate.Ready(n) {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s: scan on another node (--node), or without --node to let the cluster pick", n.Name, nodestate.Words(n))
		}
		return n, nil
	}
	nodes := s.cfg.Cache.Nodes()
	slices.SortFunc(nodes, func(a, b *berthv1.Node) int { return cmp.Compare(a.Name, b.Name) })
	var best *berthv1.Node
	bestScore := -1
	for _, n := range nodes {
		if !nodestate.Ready(n) {
			continue
		}
		score := 0
		if dgst != "" && holdsDigest(n, dgst) {
			score = 2
		} else if holds(n, image) {
			score = 1
		}
		if score > bestScore {
			best, bestScore = n, score
		}
	}
	if best == nil {
		return nil, status.Error(codes.FailedPrecondition, "no node is ready to scan on: start an agent (`berth agent --join ...`)")
	}
	return best, nil
}

// scanGate is the block severity for namespace ns and where it is set:
// the namespace's own, else the cluster's.
func (s *Server) scanGate(ctx context.Context, ns string) (berthv1.Severity, string, error) {
	rec, err := s.namespaceRecord(ctx, ns)
	if err != nil {
		return 0, "", err
	}
	if v := rec.GetBlockSeverity(); v != "" {
		sev, err := vulndb.ParseSeverity(v)
		if err != nil {
			return 0, "", err
		}
		return sev, "namespace " + ns, nil
	}
	sev, err := vulndb.ParseSeverity(s.cfg.Cache.Settings().GetBlockSeverity())
	return sev, "the cluster", err
}

// blockedWords names the refused findings: "3 findings at or above high
// (the gate of namespace N): CVE-... in openssl 3.0.11-1 (fixed in ...)".
func blockedWords(blocked []*berthv1.ScanFinding, gate berthv1.Severity, where string) string {
	var parts []string
	for _, f := range blocked {
		name := f.Id
		if len(f.Aliases) > 0 {
			name = f.Aliases[0] + " (" + f.Id + ")"
		}
		fix := "no fix known"
		if f.FixedVersion != "" {
			fix = "fixed in " + f.FixedVersion
		}
		parts = append(parts, fmt.Sprintf("%s %s in %s %s, %s", vulndb.SeverityName(f.Severity), name, f.Package, f.InstalledVersion, fix))
	}
	noun := "findings"
	if len(blocked) == 1 {
		noun = "finding"
	}
	return fmt.Sprintf("%d %s at or above %s (the scan gate of %s): %s", len(blocked), noun, vulndb.SeverityName(gate), where, strings.Join(parts, "; "))
}

// checkScanGate refuses the services whose images have findings the
// namespace's gate blocks, less those the service allows. An image not
// scanned yet is scanned now, on a ready node; one that cannot be
// scanned is refused too, since letting it through would defeat the gate.
func (s *Server) checkScanGate(ctx context.Context, req *berthv1.ApplyRequest) (validation.Errors, error) {
	gate, where, err := s.scanGate(ctx, req.Namespace)
	if err != nil {
		return nil, storeError(err)
	}
	if gate == berthv1.Severity_SEVERITY_UNSPECIFIED {
		return nil, nil
	}
	db, err := s.currentVulnDB(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading the vulnerability database: %v", err)
	}
	if db == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "the scan gate of %s blocks %s findings, but no vulnerability database was imported: import one with `berth vulndb import FILE.zip|DIR`, or lift the gate (`berth cluster settings --block-severity none`)", where, vulndb.SeverityName(gate))
	}
	var errs validation.Errors
	for _, svc := range req.Services {
		spec := svc.GetSpec()
		if spec.GetImage() == "" || (spec.GetBuild() != nil && spec.GetImageDigest() == "") {
			// A service built from source is gated once the CLI built
			// it (its digest then set); a dry run builds nothing.
			continue
		}
		image, err := imageref.Normalize(spec.Image)
		if err != nil {
			continue // validation said so already
		}
		res, err := s.scan(ctx, image, spec.ImageDigest, "", false)
		if err != nil {
			errs = append(errs, validation.FieldError{Service: svc.Name, Field: "image", Reason: fmt.Sprintf("image %s must be scanned before it runs (the scan gate of %s) and the scan failed: %s", spec.Image, where, status.Convert(err).Message())})
			continue
		}
		if blocked := vulndb.Blocked(res.Findings, gate, spec.AllowVulnerabilities); len(blocked) > 0 {
			errs = append(errs, validation.FieldError{Service: svc.Name, Field: "image", Reason: fmt.Sprintf("image %s (%s) has %s; use an image with the fixes, or accept them with x-berth: {allow-vulnerabilities: [ID, ...]}", spec.Image, res.Digest, blockedWords(blocked, gate, where))})
		}
	}
	return errs, nil
}

// scanBuilt scans what a build made, on the node that built it, and puts
// the counts (or why there are none) in the result the client sees. A
// failed scan does not fail the build: the gate applies when the image is
// applied.
func (s *Server) scanBuilt(ctx context.Context, node *berthv1.Node, res *berthv1.BuildResult) {
	if res.GetImage() == "" || res.GetDigest() == "" {
		return
	}
	r, err := s.scan(ctx, res.Image, res.Digest, node.GetMeta().GetId(), true)
	if err != nil {
		res.ScanError = status.Convert(err).Message()
		s.log.Warn("scan of a built image", "image", res.Image, "err", err)
		return
	}
	res.Scan = ScanSummary(r)
}
