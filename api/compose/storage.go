package compose

import (
	"maps"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// storage is what a project defines at the top level for its services to
// mount and read: volumes, and secrets and configs with their data.
type storage struct {
	volumes    []*berthv1.AppVolume
	volumeDefs types.Volumes
	// secrets and configs are those read, by key; one that could not be
	// read is missing.
	secrets, configs       map[string]*berthv1.AppFile
	secretDefs, configDefs map[string]types.FileObjectConfig
	// runSecrets and buildSecrets are the keys of the secrets services
	// use, and of those builds use.
	runSecrets, buildSecrets map[string]bool
}

// readStorage converts the project's volumes and reads its secrets and
// configs; noFiles refuses those read from files. Problems name the field
// <list>.<key>.<field>.
func readStorage(project *types.Project, noFiles bool) (*storage, validation.Errors) {
	st := &storage{
		volumeDefs:   project.Volumes,
		secretDefs:   secretDefs(project.Secrets),
		configDefs:   configDefs(project.Configs),
		runSecrets:   map[string]bool{},
		buildSecrets: map[string]bool{},
	}
	var errs, more validation.Errors
	st.volumes, errs = convertVolumes(project.Volumes)
	st.secrets, more = readFiles(secretKind, st.secretDefs, project.Environment, noFiles)
	errs = append(errs, more...)
	st.configs, more = readFiles(configKind, st.configDefs, project.Environment, noFiles)
	return st, append(errs, more...)
}

// appFiles returns the secrets and configs read, sorted by key, without
// the secrets only builds use: their data goes to the builds alone.
func (st *storage) appFiles() (secrets, configs []*berthv1.AppFile) {
	for _, key := range slices.Sorted(maps.Keys(st.secrets)) {
		if !st.buildSecrets[key] || st.runSecrets[key] {
			secrets = append(secrets, st.secrets[key])
		}
	}
	for _, key := range slices.Sorted(maps.Keys(st.configs)) {
		configs = append(configs, st.configs[key])
	}
	return secrets, configs
}

// convertStorage maps a service's volumes:, tmpfs:, secrets: and configs:
// onto its spec.
func (c *converted) convertStorage(svc types.ServiceConfig, st *storage) {
	var errs validation.Errors
	c.spec.Mounts, c.mountFields, errs = serviceMounts(svc, st.volumeDefs)
	c.errs = append(c.errs, errs...)
	for _, ref := range svc.Secrets {
		st.runSecrets[ref.Source] = true
	}
	c.spec.Secrets, errs = fileRefs(svc, secretKind, secretRefs(svc.Secrets), st.secretDefs)
	c.errs = append(c.errs, errs...)
	c.spec.Configs, errs = fileRefs(svc, configKind, configRefs(svc.Configs), st.configDefs)
	c.errs = append(c.errs, errs...)
}

// locateAll sets the file and line of each problem.
func locateAll(errs validation.Errors, locate func(validation.FieldError) validation.FieldError) validation.Errors {
	out := make(validation.Errors, 0, len(errs))
	for _, fe := range errs {
		out = append(out, locate(fe))
	}
	return out
}
