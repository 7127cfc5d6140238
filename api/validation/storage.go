package validation

import (
	"fmt"
	"path"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/volume"
)

// SecretsDir is where a secret's file appears when its target is a name,
// not a path.
const SecretsDir = "/run/secrets"

// DefaultFileMode is the mode of a secret's or config's file when none
// is given: readable by every user of the container, as in Swarm.
const DefaultFileMode = 0o444

// SecretTarget is where a secret with the given target appears: the
// target itself when it is an absolute path, else a file of that name in
// /run/secrets.
func SecretTarget(target string) string {
	if target == "" || path.IsAbs(target) {
		return target
	}
	return SecretsDir + "/" + target
}

// ConfigTarget is where a config with the given target appears: the
// target itself when it is an absolute path, else that path from the
// container's root.
func ConfigTarget(target string) string {
	if target == "" || path.IsAbs(target) {
		return target
	}
	return "/" + target
}

// mountTargets tells which part of a spec put a file or mount at each
// path of its containers, so that no two land on one.
type mountTargets map[string]string

// claim records that field puts something at target, reporting it when
// another field did already.
func (v *specValidator) claim(targets mountTargets, field, target string) {
	clean := path.Clean(target)
	if other, ok := targets[clean]; ok {
		v.add(field, fmt.Sprintf("%s is also the target of %s; give each its own path in the container", clean, other))
		return
	}
	targets[clean] = field
}

// absTarget checks a path in the container that something is mounted at,
// and reports whether it is usable.
func (v *specValidator) absTarget(field, target string) bool {
	switch {
	case target == "":
		v.add(field, "the target is empty; give the path in the container, like /data")
	case !path.IsAbs(target):
		v.add(field, fmt.Sprintf("%q is not an absolute path; write it from the container's root, like /%s", target, strings.TrimPrefix(target, "./")))
	case path.Clean(target) == "/":
		v.add(field, "nothing can be mounted over the container's root; give a directory below it")
	default:
		return true
	}
	return false
}

// storage checks a spec's mounts, secrets and configs on their own, and
// that no two of them land on one path; ValidateStorage checks them
// against the app's definitions.
func (v *specValidator) storage(spec *berthv1.ServiceSpec) {
	targets := mountTargets{}
	for i, m := range spec.GetMounts() {
		field := fmt.Sprintf("volumes[%d]", i)
		if m == nil {
			v.add(field, "mount is missing")
			continue
		}
		if v.absTarget(field+".target", m.GetTarget()) {
			v.claim(targets, field+".target", m.GetTarget())
		}
		v.mount(field, m)
	}
	v.files("secret", "secrets", spec.GetSecrets(), SecretTarget, targets)
	v.files("config", "configs", spec.GetConfigs(), ConfigTarget, targets)
}

// mount checks one mount's fields but its target.
func (v *specValidator) mount(field string, m *berthv1.Mount) {
	typ := m.GetType()
	if typ != berthv1.MountType_MOUNT_TYPE_TMPFS && (m.GetTmpfsSize() != 0 || m.GetTmpfsMode() != 0) {
		v.add(field+".tmpfs", "size and mode apply to type: tmpfs only; remove them")
	}
	if typ != berthv1.MountType_MOUNT_TYPE_UNSPECIFIED && typ != berthv1.MountType_MOUNT_TYPE_VOLUME {
		if m.GetNoCopy() || m.GetSubpath() != "" {
			v.add(field+".volume", "nocopy and subpath apply to type: volume only; remove them")
		}
		if m.GetExternal() {
			v.add(field+".external", "only a named volume can be external")
		}
	}
	switch typ {
	case berthv1.MountType_MOUNT_TYPE_UNSPECIFIED, berthv1.MountType_MOUNT_TYPE_VOLUME:
		if src := m.GetSource(); src != "" {
			if err := volume.ValidateName(src); err != nil {
				v.add(field+".source", err.Error())
			}
		} else if m.GetExternal() {
			v.add(field+".external", "a volume without a source lives as long as its task and cannot be external; name a volume")
		}
		if sp := m.GetSubpath(); sp != "" && (path.IsAbs(sp) || path.Clean(sp) != sp || sp == ".." || strings.HasPrefix(sp, "../")) {
			v.add(field+".volume.subpath", fmt.Sprintf("%q is not a path inside the volume; give a relative path without '..', like data/db", sp))
		}
	case berthv1.MountType_MOUNT_TYPE_BIND:
		if src := m.GetSource(); !path.IsAbs(src) {
			v.add(field+".source", fmt.Sprintf("%q is not an absolute path of the node; give the host directory from its root, like /srv/data", src))
		}
	case berthv1.MountType_MOUNT_TYPE_TMPFS:
		if m.GetSource() != "" {
			v.add(field+".source", "a tmpfs mount has no source; remove it")
		}
		if m.GetTmpfsSize() < 0 {
			v.add(field+".tmpfs.size", fmt.Sprintf("%d bytes is negative; give a size like 64m, or leave it unset", m.GetTmpfsSize()))
		}
		if m.GetTmpfsMode() > 0o7777 {
			v.add(field+".tmpfs.mode", fmt.Sprintf("0%o is not a file mode; give permission bits in octal, like 01777", m.GetTmpfsMode()))
		}
	default:
		v.add(field+".type", fmt.Sprintf("unknown mount type %d; use volume, bind or tmpfs", typ))
	}
}

// files checks a spec's secrets or configs (kind and list say which);
// target maps a reference's target to the path of its file.
func (v *specValidator) files(kind, list string, refs []*berthv1.FileReference, target func(string) string, targets mountTargets) {
	for i, r := range refs {
		field := fmt.Sprintf("%s[%d]", list, i)
		if r == nil {
			v.add(field, kind+" is missing")
			continue
		}
		if err := ValidateFileName(kind, r.GetName()); err != nil {
			v.add(field+".source", err.Error())
		}
		t := target(r.GetTarget())
		if v.absTarget(field+".target", t) {
			if strings.HasSuffix(t, "/") {
				v.add(field+".target", fmt.Sprintf("%q names a directory; give the path of the %s's file", t, kind))
			} else {
				v.claim(targets, field+".target", t)
			}
		}
		if r.GetMode() > 0o777 {
			v.add(field+".mode", fmt.Sprintf("0%o is out of range; give permission bits in octal from 0 to 0777, like 0440", r.GetMode()))
		}
	}
}

// topField names a field of a volume, secret or config the app defines,
// as the Compose file writes it: <list>.<key>.<field>.
func topField(list, key, name, field string) string {
	if key == "" {
		key = name
	}
	if field == "" {
		return list + "." + key
	}
	return list + "." + key + "." + field
}

// ValidateStorage checks an app's volumes, secrets and configs, and the
// services' use of them: names valid and not defined twice, the data of
// a secret or config at most MaxFileSize (and none for an external one),
// and every named volume, secret and config a service uses defined by the
// app (external ones too, with external set). Problems on a definition
// name the field <list>.<key>.<field>; problems on a service are the
// service's.
func ValidateStorage(req *berthv1.ApplyRequest) Errors {
	var errs Errors
	volumes := map[string]bool{}
	for i, vol := range req.GetVolumes() {
		if vol == nil {
			errs = append(errs, FieldError{Field: fmt.Sprintf("volumes[%d]", i), Reason: "volume is missing"})
			continue
		}
		field := topField("volumes", vol.GetKey(), vol.GetName(), "name")
		if err := volume.ValidateName(vol.GetName()); err != nil {
			errs = append(errs, FieldError{Field: field, Reason: err.Error()})
			continue
		}
		if volumes[vol.GetName()] {
			errs = append(errs, FieldError{Field: field, Reason: fmt.Sprintf("volume %q is defined twice; give each volume a distinct name", vol.GetName())})
		}
		volumes[vol.GetName()] = true
	}
	secrets, serrs := validateAppFiles("secret", "secrets", req.GetSecrets())
	configs, cerrs := validateAppFiles("config", "configs", req.GetConfigs())
	errs = append(append(errs, serrs...), cerrs...)

	for _, svc := range req.GetServices() {
		for i, m := range svc.GetSpec().GetMounts() {
			src := m.GetSource()
			if !volume.IsNamed(m) || volumes[src] {
				continue
			}
			errs = append(errs, FieldError{Service: svc.GetName(), Field: fmt.Sprintf("volumes[%d].source", i),
				Reason: fmt.Sprintf("volume %q is not defined; add it under the top-level volumes: key (with external: true for a volume the app does not own)", src)})
		}
		errs = append(errs, undefinedFiles(svc, "secret", "secrets", svc.GetSpec().GetSecrets(), secrets)...)
		errs = append(errs, undefinedFiles(svc, "config", "configs", svc.GetSpec().GetConfigs(), configs)...)
	}
	return errs
}

// validateAppFiles checks an app's secrets or configs and returns the
// names defined.
func validateAppFiles(kind, list string, files []*berthv1.AppFile) (map[string]bool, Errors) {
	var errs Errors
	names := map[string]bool{}
	for i, f := range files {
		if f == nil {
			errs = append(errs, FieldError{Field: fmt.Sprintf("%s[%d]", list, i), Reason: kind + " is missing"})
			continue
		}
		if err := ValidateFileName(kind, f.GetName()); err != nil {
			errs = append(errs, FieldError{Field: topField(list, f.GetKey(), f.GetName(), "name"), Reason: err.Error()})
			continue
		}
		field := topField(list, f.GetKey(), f.GetName(), "")
		if names[f.GetName()] {
			errs = append(errs, FieldError{Field: field, Reason: fmt.Sprintf("%s %q is defined twice; give each %s a distinct name", kind, f.GetName(), kind)})
		}
		names[f.GetName()] = true
		switch n := len(f.GetData()); {
		case f.GetExternal() && n > 0:
			errs = append(errs, FieldError{Field: field, Reason: fmt.Sprintf("an external %s exists already and takes no data from the app; send none", kind)})
		case n > MaxFileSize:
			errs = append(errs, FieldError{Field: field, Reason: fmt.Sprintf("%s %q holds %d bytes, more than the %d KiB a %s may hold", kind, f.GetName(), n, MaxFileSize>>10, kind)})
		}
	}
	return names, errs
}

// undefinedFiles reports the secrets or configs svc uses that the app
// does not define.
func undefinedFiles(svc *berthv1.Service, kind, list string, refs []*berthv1.FileReference, defined map[string]bool) Errors {
	var errs Errors
	for i, r := range refs {
		if r == nil || r.GetName() == "" || defined[r.GetName()] {
			continue
		}
		errs = append(errs, FieldError{Service: svc.GetName(), Field: fmt.Sprintf("%s[%d].source", list, i),
			Reason: fmt.Sprintf("%s %q is not defined; add it under the top-level %s: key (with external: true for one made with berth %s create)", kind, r.GetName(), list, kind)})
	}
	return errs
}

// normalizeStorage fills in the defaults of a spec's mounts, secrets and
// configs: a mount's unset type is volume and its target is cleaned; a
// secret's or config's target is made a path (SecretTarget, ConfigTarget)
// and its unset mode is DefaultFileMode.
func normalizeStorage(spec *berthv1.ServiceSpec) {
	for _, m := range spec.Mounts {
		if m == nil {
			continue
		}
		if m.Type == berthv1.MountType_MOUNT_TYPE_UNSPECIFIED {
			m.Type = berthv1.MountType_MOUNT_TYPE_VOLUME
		}
		if path.IsAbs(m.Target) {
			m.Target = path.Clean(m.Target)
		}
	}
	for _, refs := range []struct {
		list   []*berthv1.FileReference
		target func(string) string
	}{{spec.Secrets, SecretTarget}, {spec.Configs, ConfigTarget}} {
		for _, r := range refs.list {
			if r == nil {
				continue
			}
			r.Target = refs.target(r.Target)
			if r.Mode == 0 {
				r.Mode = DefaultFileMode
			}
		}
	}
}
