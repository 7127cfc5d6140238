// Package compose turns Compose files into Berth services. Parsing,
// interpolation, .env, env_file, extends, include and profiles follow
// Compose exactly (compose-go does them); this package maps the result onto
// ServiceSpecs, warns about every key Berth does not honour yet, and reports
// problems with the file, service and field they are in.
package compose

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// Options says which Compose files to load and how.
type Options struct {
	// Files are the Compose files, later ones overriding earlier ones. The
	// first one's directory is the project directory. Empty means
	// $COMPOSE_FILE, else compose.yaml (or compose.yml, docker-compose.yml,
	// docker-compose.yaml, plus a matching override file) in the working
	// directory or the nearest parent holding one.
	Files []string
	// Project names the app. Empty means $COMPOSE_PROJECT_NAME, else the
	// file's top-level name:, else the project directory's name, normalized
	// as Compose does.
	Project string
	// Profiles enables services with these profiles. Empty means
	// $COMPOSE_PROFILES.
	Profiles []string
	// Environment is what ${VARIABLES} and COMPOSE_* settings are read from.
	// Nil means the process environment. Either way .env in the project
	// directory is read too, without overriding it.
	Environment map[string]string
}

// Project is a loaded Compose project.
type Project struct {
	// App is the project name.
	App string
	// Services have Name and a normalized Spec set, sorted by name. Each
	// spec's networks have their full names (see Networks), in Compose's
	// order: by priority, then by key.
	Services []*berthv1.Service
	// Networks are the networks the file defines (and "default" when a
	// service joins it, as every service naming none does), sorted by key:
	// named "<app>_<key>", or the file's name:, or an external network's
	// own name. Apply takes them as they are.
	Networks []*berthv1.AppNetwork
	// Dir is the project directory: the build contexts of the services'
	// specs (Spec.Build.Context) are relative to it.
	Dir string
	// Warnings name every key that is set but not honoured, one a line, like
	// `compose.yaml: service "web": healthcheck is not supported yet and is ignored`.
	Warnings []string
}

// Load reads, converts and validates a Compose project. Its errors are
// validation.Errors naming the file (and line, service and field where
// known) and saying how to fix each problem; every problem found is
// reported, not just the first.
func Load(ctx context.Context, opts Options) (*Project, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("compose: working directory: %w", err)
	}
	if opts.Project != "" && loader.NormalizeProjectName(opts.Project) != opts.Project {
		return nil, validation.Errors{{Field: "project", Reason: invalidProjectName(opts.Project)}}
	}

	check := &unsupportedCheck{}
	envOpt := cli.WithOsEnv
	if opts.Environment != nil {
		envOpt = func(o *cli.ProjectOptions) error {
			maps.Copy(o.Environment, opts.Environment)
			return nil
		}
	}
	po, err := cli.NewProjectOptions(opts.Files,
		envOpt,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithName(opts.Project),
		// .env is found in the project directory, so after the files.
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(opts.Profiles...),
		cli.WithLoadOptions(check.option()),
		// The consistency check stops at the first problem, and nearly all
		// it checks (networks, volumes, build) Berth ignores with a warning;
		// ValidateSpec and ValidateDependencies report the rest, all at once.
		cli.WithConsistency(false),
	)
	if err != nil {
		return nil, validation.Errors{{Reason: fmt.Sprintf("reading the project settings: %v", err)}}
	}
	if len(po.ConfigPaths) == 0 {
		return nil, validation.Errors{{Reason: fmt.Sprintf("no Compose file found in %s or its parents; create compose.yaml there or name a file with -f", cwd)}}
	}

	srcs, errs := readSources(po.ConfigPaths, cwd)
	if len(errs) == 0 {
		errs = srcs.checkShortPorts()
	}
	if len(errs) > 0 {
		return nil, errs
	}

	loaded, err := po.LoadProject(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, loadError(err, srcs, cwd)
	}

	p := &Project{App: loaded.Name, Dir: loaded.WorkingDir}
	if err := validation.ValidateName("app", p.App); err != nil {
		errs = append(errs, validation.FieldError{File: srcs.main(), Field: "name", Reason: err.Error() + "; set name: in the file or pass a project name"})
	}
	var netErrs validation.Errors
	p.Networks, netErrs = convertNetworks(loaded.Networks)
	keys := networkKeys(p.Networks)
	locate := func(fe validation.FieldError) validation.FieldError {
		if fe.Service == "" {
			fe.File, fe.Line = srcs.locateTopField(fe.Field)
			return fe
		}
		fe.Field = fileField(fe.Field, keys)
		fe.File, fe.Line = srcs.locateServiceField(fe.Service, fe.Field)
		return fe
	}
	for _, fe := range netErrs {
		errs = append(errs, locate(fe))
	}
	keep := make(map[string]bool, len(loaded.Services))
	for _, name := range slices.Sorted(maps.Keys(loaded.Services)) {
		keep[name] = true
		err := validation.ValidateName("service", name)
		if err == nil {
			err = validation.ValidateDNSLabel("service name", name)
		}
		if err != nil {
			file, line := srcs.locate("services", name)
			errs = append(errs, validation.FieldError{File: file, Line: line, Service: name, Reason: err.Error()})
			continue
		}
		c := convertService(loaded.Services[name])
		nets, netErrs := serviceNetworks(loaded.Services[name], loaded.Networks)
		c.spec.Networks, c.errs = nets, append(c.errs, netErrs...)
		build, buildErrs := convertBuild(loaded.Services[name], loaded.WorkingDir)
		if build != nil {
			c.spec.Build, c.errs = build, append(c.errs, buildErrs...)
			if c.spec.Image == "" {
				c.spec.Image = defaultBuildImage(p.App, name)
			}
		}
		deps, depErrs := dependencies(loaded.Services[name], loaded)
		c.spec.DependsOn, c.errs = deps, append(c.errs, depErrs...)
		validation.Normalize(c.spec)
		problems := append(c.errs, validation.ValidateSpec(name, c.spec)...)
		for _, fe := range problems {
			errs = append(errs, locate(fe))
		}
		for _, key := range c.overridden {
			file, _ := srcs.locate("services", name, key)
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: service %q: %s is overridden by deploy.restart_policy and is ignored", file, name, key))
		}
		p.Services = append(p.Services, &berthv1.Service{Name: name, Spec: c.spec})
	}
	for _, fe := range validation.ValidateDependencies(p.Services) {
		fe.File, fe.Line = srcs.locate(fieldPath(fe.Service, fe.Field)...)
		errs = append(errs, fe)
	}
	if len(errs) == 0 {
		// On converted networks only: a network that failed to convert
		// would be reported again as undefined.
		for _, fe := range validation.ValidateNetworks(p.App, p.Networks, p.Services) {
			errs = append(errs, locate(fe))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, a := range check.attributes(keep) {
		file, _ := srcs.locate(a.path...)
		p.Warnings = append(p.Warnings, a.warning(file))
	}
	p.Warnings = append(p.Warnings, imageHealthWarnings(p.Services, srcs)...)
	return p, nil
}
