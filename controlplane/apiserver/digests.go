package apiserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/controlplane/store"
)

// pinDigests fills image_digest in each requested service spec that has
// none, so every task of a spec runs the same bits whatever its tag points
// to later. It returns warnings for the tags it could not resolve; those
// specs keep an empty digest (the agents pull the tag, and report what
// went wrong), and the apply goes on.
//
// A tag is resolved when a service is created or its image changes. A
// service whose image is the one stored keeps its stored digest (or its
// lack of one), without asking anyone: re-applying the same file is
// "unchanged", and a tag that moved is not rolled out behind the user's
// back. To take a moved tag, change the image reference. Services built from
// source (build:) are not pinned: their image is made after the apply.
//
// The digest comes from the record of an image the control plane itself
// built or imported (store.ImageRecord), else from the image's registry.
// It never comes from the digests nodes report they hold: one node could
// otherwise make every other run its bits under a tag it does not own.
func (s *Server) pinDigests(ctx context.Context, req *berthv1.ApplyRequest) []string {
	existing := map[string]*berthv1.ServiceSpec{}
	for _, svc := range s.cfg.Cache.Services(store.AppServicesPrefix(req.Namespace, req.App)) {
		existing[svc.Name] = svc.Spec
	}
	todo := map[string][]*berthv1.ServiceSpec{} // by image as written
	for _, want := range req.Services {
		spec := want.GetSpec()
		if spec == nil || spec.Image == "" || spec.ImageDigest != "" || spec.Build != nil {
			continue
		}
		if cur := existing[want.Name]; cur != nil && cur.GetImage() == spec.Image && cur.GetBuild() == nil {
			// Even an empty digest (the tag did not resolve when it was
			// applied) stays: pinning it now would roll out new tasks
			// for a file that did not change.
			spec.ImageDigest = cur.GetImageDigest()
			continue
		}
		todo[spec.Image] = append(todo[spec.Image], spec)
	}
	if len(todo) == 0 {
		return nil
	}
	var (
		mu       sync.Mutex
		warnings []string
		wg       sync.WaitGroup
	)
	for image, specs := range todo {
		wg.Go(func() {
			digest, err := s.resolveDigest(ctx, image)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("image %s is not pinned to a digest: %v; the nodes will use the tag they hold, else pull it from its registry", image, err))
				return
			}
			for _, spec := range specs {
				spec.ImageDigest = digest
			}
		})
	}
	wg.Wait()
	sort.Strings(warnings)
	return warnings
}

// resolveDigest returns the digest image stands for: the one it names,
// else the one the control plane recorded when it built or imported the
// image, else its registry's answer.
func (s *Server) resolveDigest(ctx context.Context, image string) (string, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return "", err
	}
	if ref.Pinned() {
		return ref.Digest(), nil
	}
	if s.cfg.Store != nil {
		rec, err := s.cfg.Store.ImageRecord(ctx, ref.String())
		if err != nil {
			return "", fmt.Errorf("reading the cluster's record of it: %w", err)
		}
		if rec != nil && rec.Digest != "" {
			return rec.Digest, nil
		}
	}
	fix := "build it with `berth build -t " + ref.Familiar() + "`, load it with `berth image import`, or push it to " + ref.Host()
	if s.cfg.Registries == nil {
		return "", fmt.Errorf("the cluster neither built nor imported it, and no registry is asked; %s", fix)
	}
	d, err := s.cfg.Registries.Resolve(ctx, image)
	if err != nil {
		return "", fmt.Errorf("the cluster neither built nor imported it, and its registry did not resolve it (%w); %s", err, fix)
	}
	return d, nil
}

// warningsSummary joins warnings for a log line.
func warningsSummary(warnings []string) string { return strings.Join(warnings, "; ") }
