package apiserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/distribution/reference"
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
// The digest comes first from the nodes' images (Node.image_digests), when
// every node that holds the tag agrees on it, else from the registry.
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
	onNodes := s.nodeDigests()
	var (
		mu       sync.Mutex
		warnings []string
		wg       sync.WaitGroup
	)
	for image, specs := range todo {
		wg.Go(func() {
			digest, err := s.resolveDigest(ctx, image, onNodes)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("image %s is not pinned to a digest: %v; the nodes will pull the tag", image, err))
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

// nodeDigests maps each image (full form) on the nodes to the digests the
// nodes hold it at.
func (s *Server) nodeDigests() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, n := range s.cfg.Cache.Nodes() {
		for img, digest := range n.ImageDigests {
			full, err := registry.NormalizeImage(img)
			if err != nil || digest == "" {
				continue
			}
			if out[full] == nil {
				out[full] = map[string]bool{}
			}
			out[full][digest] = true
		}
	}
	return out
}

// resolveDigest returns the digest image's tag stands for: the one the
// image names, else the one every node holding it agrees on, else the
// registry's answer.
func (s *Server) resolveDigest(ctx context.Context, image string, onNodes map[string]map[string]bool) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", err
	}
	if d, ok := named.(reference.Digested); ok {
		return d.Digest().String(), nil
	}
	full := reference.TagNameOnly(named).String()
	digests := onNodes[full]
	if len(digests) == 1 {
		for d := range digests {
			return d, nil
		}
	}
	if s.cfg.Registries == nil {
		if len(digests) > 1 {
			return "", fmt.Errorf("the nodes hold different images under this tag")
		}
		return "", fmt.Errorf("no node holds it and no registry is asked")
	}
	d, err := s.cfg.Registries.Resolve(ctx, image)
	if err != nil {
		if len(digests) > 1 {
			return "", fmt.Errorf("the nodes hold different images under this tag, and %w", err)
		}
		return "", fmt.Errorf("no node holds it, and %w", err)
	}
	return d, nil
}

// warningsSummary joins warnings for a log line.
func warningsSummary(warnings []string) string { return strings.Join(warnings, "; ") }
