package compose

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/compose-spec/compose-go/v2/types"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// fileKind is what sets secrets and configs apart while they are read
// and referred to.
type fileKind struct {
	name string // "secret" or "config"
	list string // the top-level and service key: "secrets" or "configs"
	// content: the definition may give its data inline (content:).
	content bool
	// target is where a reference's file appears when it names none
	// (key is the name the service uses) or a relative one.
	target func(target, key string) string
}

var (
	secretKind = fileKind{name: "secret", list: "secrets", target: func(target, key string) string {
		if target == "" {
			target = key
		}
		return validation.SecretTarget(target)
	}}
	configKind = fileKind{name: "config", list: "configs", content: true, target: func(target, key string) string {
		if target == "" {
			target = key
		}
		return validation.ConfigTarget(target)
	}}
)

// readFiles reads the data of the project's top-level secrets or configs
// (kind says which), by key: from file: (compose-go made its path
// absolute), from environment: (the project's environment, .env
// included), or for a config from content: (interpolated); an external
// one has none; noFiles refuses file:. Data is never in a problem's text.
func readFiles(kind fileKind, defs map[string]types.FileObjectConfig, env types.Mapping, noFiles bool) (map[string]*berthv1.AppFile, validation.Errors) {
	var errs validation.Errors
	out := make(map[string]*berthv1.AppFile, len(defs))
	for _, key := range slices.Sorted(maps.Keys(defs)) {
		def := defs[key]
		field := kind.list + "." + key
		fail := func(sub, reason string) {
			errs = append(errs, validation.FieldError{Field: field + sub, Reason: fmt.Sprintf("%s %q: %s", kind.name, key, reason)})
		}
		f := &berthv1.AppFile{Name: def.Name, Key: key, External: bool(def.External)}
		if len(def.Labels) > 0 {
			f.Labels = maps.Clone(map[string]string(def.Labels))
		}
		switch {
		case f.External:
		case def.Environment != "":
			v, ok := env[def.Environment]
			if !ok {
				fail(".environment", fmt.Sprintf("environment variable %s is not set; set it in the environment or in .env", def.Environment))
				continue
			}
			if len(v) > validation.MaxFileSize {
				fail(".environment", fmt.Sprintf("environment variable %s holds %d bytes, more than the %d KiB a %s may hold", def.Environment, len(v), validation.MaxFileSize>>10, kind.name))
				continue
			}
			f.Data = []byte(v)
		case def.File != "" && noFiles:
			fail(".file", fmt.Sprintf("a file cannot be read from here: apply this Compose file with the berth CLI, or make the %s with berth %s create and say external: true", kind.name, kind.name))
			continue
		case def.File != "":
			data, err := readFileData(kind.name, def.File)
			if err != nil {
				fail(".file", err.Error())
				continue
			}
			f.Data = data
		case kind.content && def.Content != "":
			if len(def.Content) > validation.MaxFileSize {
				fail(".content", fmt.Sprintf("holds %d bytes, more than the %d KiB a config may hold", len(def.Content), validation.MaxFileSize>>10))
				continue
			}
			f.Data = []byte(def.Content)
		default:
			how := "file: or environment:"
			if kind.content {
				how = "file:, environment: or content:"
			}
			fail("", fmt.Sprintf("give its data with %s, or say external: true for one made with berth %s create", how, kind.name))
			continue
		}
		out[key] = f
	}
	return out, errs
}

// readFileData reads the file of a secret or config (kind says which),
// of at most validation.MaxFileSize bytes. Its errors name the file.
func readFileData(kind, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read file %s: %v; create it, or fix the path (relative to the Compose file)", path, unwrapPathError(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory; name a file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, validation.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read file %s: %v", path, unwrapPathError(err))
	}
	if len(data) > validation.MaxFileSize {
		size := "more than " + strconv.Itoa(validation.MaxFileSize) + " bytes"
		if fi, err := f.Stat(); err == nil {
			size = strconv.FormatInt(fi.Size(), 10) + " bytes"
		}
		return nil, fmt.Errorf("file %s holds %s, more than the %d KiB a %s may hold", path, size, validation.MaxFileSize>>10, kind)
	}
	return data, nil
}

// fileRefs maps a service's secrets: or configs: onto references to their
// full names. A target that is empty or relative is made a path
// (fileKind.target); uid and gid must be numbers; mode is 0444 when not
// given, and must be permission bits.
func fileRefs(svc types.ServiceConfig, kind fileKind, refs []types.FileReferenceConfig, defs map[string]types.FileObjectConfig) ([]*berthv1.FileReference, validation.Errors) {
	var (
		out  []*berthv1.FileReference
		errs validation.Errors
	)
	for i, ref := range refs {
		field := fmt.Sprintf("%s[%d]", kind.list, i)
		fail := func(sub, reason string) {
			errs = append(errs, validation.FieldError{Service: svc.Name, Field: field + sub, Reason: reason})
		}
		def, ok := defs[ref.Source]
		if !ok {
			fail(".source", fmt.Sprintf("%s %q is not defined; add it under the top-level %s: key (with external: true for one made with berth %s create)", kind.name, ref.Source, kind.list, kind.name))
			continue
		}
		r := &berthv1.FileReference{Name: def.Name, Target: kind.target(ref.Target, ref.Source), Mode: validation.DefaultFileMode}
		var err error
		if r.Uid, err = fileOwner(ref.UID); err != nil {
			fail(".uid", err.Error())
		}
		if r.Gid, err = fileOwner(ref.GID); err != nil {
			fail(".gid", err.Error())
		}
		if ref.Mode != nil {
			mode := int64(*ref.Mode)
			if mode < 0 || mode > 0o777 {
				fail(".mode", fmt.Sprintf("0%o is out of range; give permission bits in octal from 0 to 0777, like 0440", mode))
			} else if mode != 0 {
				r.Mode = uint32(mode)
			}
		}
		out = append(out, r)
	}
	return out, errs
}

// fileOwner reads a uid or gid, which Swarm takes as a number only.
func fileOwner(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number; give a numeric id, like 1000", s)
	}
	return uint32(n), nil
}

// buildSecrets maps a service's build.secrets onto the ids BuildKit
// mounts them by (the target, else the key, as Compose names them) and
// their data, from the top-level secrets read. The data goes to the build
// only, never into a spec.
func buildSecrets(svc types.ServiceConfig, st *storage) (ids []string, data []*berthv1.BuildSecret, errs validation.Errors) {
	if svc.Build == nil {
		return nil, nil, nil
	}
	read, defs := st.secrets, st.secretDefs
	for i, ref := range svc.Build.Secrets {
		st.buildSecrets[ref.Source] = true
		field := fmt.Sprintf("build.secrets[%d]", i)
		fail := func(reason string) {
			errs = append(errs, validation.FieldError{Service: svc.Name, Field: field, Reason: reason})
		}
		def, ok := defs[ref.Source]
		if !ok {
			fail(fmt.Sprintf("secret %q is not defined; add it under the top-level secrets: key, with file: or environment:", ref.Source))
			continue
		}
		id := ref.Target
		if id == "" {
			id = ref.Source
		}
		switch f := read[ref.Source]; {
		case bool(def.External):
			fail(fmt.Sprintf("secret %q is external: its data stays in the cluster and cannot be sent to a build; give the build secret with file: or environment:", ref.Source))
		case f == nil:
			// readFiles reported why it has no data.
		case slices.Contains(ids, id):
			fail(fmt.Sprintf("id %q is given twice; give each build secret its own target", id))
		default:
			ids = append(ids, id)
			data = append(data, &berthv1.BuildSecret{Id: id, Data: f.Data})
		}
	}
	return ids, data, errs
}

// secretDefs and configDefs turn compose-go's secrets and configs into
// the one type they share.
func secretDefs(m types.Secrets) map[string]types.FileObjectConfig {
	out := make(map[string]types.FileObjectConfig, len(m))
	for k, v := range m {
		out[k] = types.FileObjectConfig(v)
	}
	return out
}

func configDefs(m types.Configs) map[string]types.FileObjectConfig {
	out := make(map[string]types.FileObjectConfig, len(m))
	for k, v := range m {
		out[k] = types.FileObjectConfig(v)
	}
	return out
}

// secretRefs and configRefs turn a service's secrets: and configs: into
// the one type they share.
func secretRefs(refs []types.ServiceSecretConfig) []types.FileReferenceConfig {
	out := make([]types.FileReferenceConfig, len(refs))
	for i, r := range refs {
		out[i] = types.FileReferenceConfig(r)
	}
	return out
}

func configRefs(refs []types.ServiceConfigObjConfig) []types.FileReferenceConfig {
	out := make([]types.FileReferenceConfig, len(refs))
	for i, r := range refs {
		out[i] = types.FileReferenceConfig(r)
	}
	return out
}
