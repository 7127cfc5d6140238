package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/moby/buildkit/util/progress/progressui"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/compose"
	"github.com/berthproject/berth/api/gitcontext"
)

// composeBuild is the build of a service whose Compose file says build:,
// tagged with the service's image, with its build secrets (their data,
// which the spec does not hold). An inline Dockerfile is sent as the
// Dockerfile's content.
func composeBuild(projectDir string, spec *berthv1.ServiceSpec, secrets []*berthv1.BuildSecret) buildRequest {
	b := spec.GetBuild()
	if gitcontext.Is(b.GetContext()) {
		// The Dockerfile's path is in the repository, as Compose reads it.
		return buildRequest{gitContext: b.GetContext(), dockerfile: b.GetDockerfile(), tags: []string{spec.GetImage()}, args: b.GetArgs(), target: b.GetTarget(), secrets: secrets}
	}
	dir := filepath.FromSlash(b.GetContext())
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(projectDir, dir)
	}
	r := buildRequest{contextDir: dir, tags: []string{spec.GetImage()}, args: b.GetArgs(), target: b.GetTarget(), secrets: secrets}
	if inline := b.GetDockerfileInline(); inline != "" {
		r.dockerfileContent = []byte(inline)
		return r
	}
	if df := b.GetDockerfile(); df != "" {
		// Compose reads the Dockerfile's path from the context.
		r.dockerfile = filepath.FromSlash(df)
		if !filepath.IsAbs(r.dockerfile) {
			r.dockerfile = filepath.Join(dir, r.dockerfile)
		}
	}
	return r
}

// buildServices builds the image of every service of p that has build:,
// one after the other with its progress on w, and pins the service to the
// image built: its spec's image_digest is the result's, so every replica
// runs these bits. The first failure stops it, before anything is
// applied. A dry run only says what would be built.
func (c *cluster) buildServices(ctx context.Context, p *compose.Project, w io.Writer, mode progressui.DisplayMode, dryRun bool) error {
	for _, svc := range p.Services {
		spec := svc.GetSpec()
		if spec.GetBuild() == nil {
			continue
		}
		r := composeBuild(p.Dir, spec, p.BuildSecrets[svc.Name])
		if dryRun {
			fmt.Fprintf(w, "dry run: service %s would be built from %s as %s\n", svc.Name, cmp.Or(r.contextDir, r.gitContext), spec.Image)
			continue
		}
		fmt.Fprintf(w, "building service %s from %s as %s\n", svc.Name, cmp.Or(r.contextDir, r.gitContext), spec.Image)
		res, err := c.build(ctx, r, w, mode)
		if err != nil {
			return fmt.Errorf("build service %s (%s): %w; nothing was changed", svc.Name, spec.Image, err)
		}
		fmt.Fprintf(w, "service %s: %s\n", svc.Name, builtLine(res))
		spec.ImageDigest = res.GetDigest()
	}
	return nil
}
