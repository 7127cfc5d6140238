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

	// noFiles refuses the files of secrets and configs (file:): the
	// Compose file came as text to a server, whose own files are not the
	// user's.
	noFiles bool
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
	// Volumes, Secrets and Configs are the volumes, secrets and configs
	// the file defines, sorted by key and named as networks are. A
	// secret's or config's Data is what its file:, environment: or (for
	// a config) content: holds; an external one has none. A secret that
	// only builds use (build.secrets) is left out: its data goes to the
	// builds alone. Apply takes them as they are.
	Volumes []*berthv1.AppVolume
	Secrets []*berthv1.AppFile
	Configs []*berthv1.AppFile
	// BuildSecrets are the build secrets of each service that builds, by
	// service name, with their data: the ids are in Spec.Build.Secrets,
	// the data only here.
	BuildSecrets map[string][]*berthv1.BuildSecret
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
		// The consistency check stops at the first problem; the conversion,
		// ValidateSpec and ValidateDependencies report what it checks
		// (undefined networks, volumes, secrets and configs, and more), all
		// at once.
		cli.WithConsistency(false),
		withPasted(opts.noFiles),
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
	if opts.noFiles {
		errs = append(errs, srcs.pastedFileReferences()...)
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
	var topErrs validation.Errors
	p.Networks, topErrs = convertNetworks(loaded.Networks)
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
	st, stErrs := readStorage(loaded, opts.noFiles)
	p.Volumes = st.volumes
	for _, fe := range append(topErrs, stErrs...) {
		errs = append(errs, locate(fe))
	}
	keep := make(map[string]bool, len(loaded.Services))
	for _, name := range slices.Sorted(maps.Keys(loaded.Services)) {
		keep[name] = true
		if err := validation.ValidateServiceName(name); err != nil {
			file, line := srcs.locate("services", name)
			errs = append(errs, validation.FieldError{File: file, Line: line, Service: name, Reason: err.Error()})
			continue
		}
		svc := loaded.Services[name]
		c := convertService(svc)
		nets, netErrs := serviceNetworks(svc, loaded.Networks)
		c.spec.Networks, c.errs = nets, append(c.errs, netErrs...)
		c.convertStorage(svc, st)
		p.addBuild(&c, svc, st, loaded.WorkingDir, opts.noFiles)
		if opts.noFiles {
			c.errs = append(c.errs, pastedServiceFiles(svc)...)
		}
		deps, depErrs := dependencies(svc, loaded)
		c.spec.DependsOn, c.errs = deps, append(c.errs, depErrs...)
		validation.Normalize(c.spec)
		problems := append(c.errs, validation.ValidateSpec(name, c.spec)...)
		for _, fe := range problems {
			errs = append(errs, locate(mountProblem(fe, c.mountFields)))
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
	errs = append(errs, locateAll(validation.ValidateServiceNames(slices.Sorted(maps.Keys(keep))), locate)...)
	p.Secrets, p.Configs = st.appFiles()
	if len(errs) == 0 {
		// On converted networks, volumes, secrets and configs only: one
		// that failed to convert would be reported again as undefined.
		errs = append(errs, locateAll(validation.ValidateNetworks(p.App, p.Networks, p.Services), locate)...)
		req := &berthv1.ApplyRequest{Services: p.Services, Volumes: p.Volumes, Secrets: p.Secrets, Configs: p.Configs}
		errs = append(errs, locateAll(validation.ValidateStorage(req), locate)...)
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
