package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/gitcontext"
	"github.com/berthproject/berth/api/validation"
)

// defaultBuildImage names the image of a service that builds one and names
// none: "<app>-<service>:latest", as other Compose tools name it, so the
// same file gives the same name everywhere.
func defaultBuildImage(app, service string) string {
	return app + "-" + service + ":latest"
}

// convertBuild maps a service's build: onto a BuildSpec. The context is
// kept relative to the project directory (the loader made it absolute), so
// the spec does not change with where the project is checked out; the
// Dockerfile stays relative to the context, as Compose reads it; an
// inline one (dockerfile_inline) is kept as it is. Build secrets are set
// by the caller, which reads their data. A pasted file's context is not
// looked at: it would be a directory of the server (see pastedServiceFiles).
func convertBuild(svc types.ServiceConfig, projectDir string, pasted bool) (*berthv1.BuildSpec, validation.Errors) {
	b := svc.Build
	if b == nil {
		return nil, nil
	}
	var errs validation.Errors
	fail := func(field, reason string) {
		errs = append(errs, validation.FieldError{Service: svc.Name, Field: field, Reason: reason})
	}
	ctx := b.Context
	switch {
	case gitcontext.Is(ctx):
		// The node's BuildKit fetches the repository itself.
		if b.DockerfileInline != "" {
			fail("build.dockerfile_inline", "a git build context reads its Dockerfile from the repository: name its path there with build.dockerfile")
		}
	case strings.Contains(ctx, "://") || strings.HasPrefix(ctx, "git@"):
		fail("build.context", fmt.Sprintf("%q is neither a local directory nor a git URL: %v", ctx, gitcontext.Check(ctx)))
	case pasted:
	default:
		if fi, err := os.Stat(ctx); err != nil || !fi.IsDir() {
			fail("build.context", fmt.Sprintf("%s is not a directory; build.context names the directory holding the Dockerfile and the files it copies, relative to the Compose file", ctx))
		}
		if rel, err := filepath.Rel(projectDir, ctx); err == nil && projectDir != "" {
			ctx = filepath.ToSlash(rel)
		}
	}
	spec := &berthv1.BuildSpec{Context: ctx, Dockerfile: b.Dockerfile, Target: b.Target, DockerfileInline: b.DockerfileInline}
	if spec.DockerfileInline != "" && spec.Dockerfile != "" {
		fail("build.dockerfile_inline", "the Dockerfile is given twice; set only one of dockerfile and dockerfile_inline")
	}
	for k, v := range b.Args {
		// An argument without a value takes it from the environment when
		// the file is loaded; one still unset is left out, so the
		// Dockerfile's default applies.
		if v == nil {
			continue
		}
		if spec.Args == nil {
			spec.Args = map[string]string{}
		}
		spec.Args[k] = *v
	}
	return spec, errs
}

// addBuild converts a service's build: into its spec (c), naming its
// image after the app when it names none, and keeps the data of its build
// secrets in p.BuildSecrets.
func (p *Project) addBuild(c *converted, svc types.ServiceConfig, st *storage, projectDir string, pasted bool) {
	build, errs := convertBuild(svc, projectDir, pasted)
	if build == nil {
		return
	}
	c.spec.Build, c.errs = build, append(c.errs, errs...)
	if c.spec.Image == "" {
		c.spec.Image = defaultBuildImage(p.App, svc.Name)
	}
	ids, data, errs := buildSecrets(svc, st)
	c.spec.Build.Secrets, c.errs = ids, append(c.errs, errs...)
	if len(data) > 0 {
		if p.BuildSecrets == nil {
			p.BuildSecrets = map[string][]*berthv1.BuildSecret{}
		}
		p.BuildSecrets[svc.Name] = data
	}
}
