package compose

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// volumeDrivers are the drivers a volume may name: Berth's volumes are
// directories of the agents' data dirs, which is Docker's local driver.
var volumeDrivers = []string{"", "local"}

// convertVolumes maps the project's top-level volumes (compose-go names
// them: "<app>_<key>", the name: given, or the key of an external one)
// onto AppVolumes, sorted by key. Problems name the field
// volumes.<key>.<field>; the caller locates them.
func convertVolumes(volumes types.Volumes) ([]*berthv1.AppVolume, validation.Errors) {
	var (
		out  []*berthv1.AppVolume
		errs validation.Errors
	)
	for _, key := range slices.Sorted(maps.Keys(volumes)) {
		v := volumes[key]
		av := &berthv1.AppVolume{Name: v.Name, Key: key, External: bool(v.External)}
		if len(v.Labels) > 0 {
			av.Labels = maps.Clone(map[string]string(v.Labels))
		}
		if !av.External {
			if !slices.Contains(volumeDrivers, v.Driver) {
				errs = append(errs, validation.FieldError{Field: "volumes." + key + ".driver",
					Reason: fmt.Sprintf("driver %q is not supported: Berth keeps a volume's data on the node of the task that uses it; use local (or leave it out)", v.Driver)})
			}
			if len(v.DriverOpts) > 0 {
				// Options such as o: bind or type: nfs would put the data
				// elsewhere than where Berth keeps it.
				errs = append(errs, validation.FieldError{Field: "volumes." + key + ".driver_opts",
					Reason: "driver options are not supported: Berth keeps a volume's data in the agent's data dir; remove them (a service can mount a host directory with type: bind)"})
			}
		}
		out = append(out, av)
	}
	return out, errs
}

// serviceMounts maps a service's volumes: and tmpfs: onto mounts, in that
// order. fields are the Compose fields of the mounts, by index, for the
// problems ValidateSpec reports on volumes[N]. A volume's source is the
// full name of the top-level volume it names; one not defined there is an
// error.
func serviceMounts(svc types.ServiceConfig, volumes types.Volumes) (mounts []*berthv1.Mount, fields []string, errs validation.Errors) {
	fail := func(field, reason string) {
		errs = append(errs, validation.FieldError{Service: svc.Name, Field: field, Reason: reason})
	}
	for i, v := range svc.Volumes {
		field := fmt.Sprintf("volumes[%d]", i)
		m := &berthv1.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
			m.Type = berthv1.MountType_MOUNT_TYPE_VOLUME
			if v.Source != "" {
				top, ok := volumes[v.Source]
				if !ok {
					fail(field+".source", fmt.Sprintf("volume %q is not defined; add it under the top-level volumes: key (with external: true for a volume the app does not own)", v.Source))
					continue
				}
				m.Source, m.External = top.Name, bool(top.External)
			}
			if v.Volume != nil {
				m.NoCopy, m.Subpath = v.Volume.NoCopy, v.Volume.Subpath
			}
		case types.VolumeTypeBind:
			// compose-go made the path absolute, from the project
			// directory; whether the cluster allows it is the server's to
			// say.
			m.Type, m.Source = berthv1.MountType_MOUNT_TYPE_BIND, v.Source
		case types.VolumeTypeTmpfs:
			m.Type = berthv1.MountType_MOUNT_TYPE_TMPFS
			if v.Tmpfs != nil {
				m.TmpfsSize, m.TmpfsMode = int64(v.Tmpfs.Size), v.Tmpfs.Mode
			}
		default:
			fail(field+".type", fmt.Sprintf("type %q is not supported; use volume, bind or tmpfs", v.Type))
			continue
		}
		mounts, fields = append(mounts, m), append(fields, field)
	}
	for i, entry := range svc.Tmpfs {
		field := fmt.Sprintf("tmpfs[%d]", i)
		m, err := tmpfsMount(entry)
		if err != nil {
			fail(field, err.Error())
			continue
		}
		mounts, fields = append(mounts, m), append(fields, field)
	}
	return mounts, fields, errs
}

// tmpfsMount reads an entry of a service's tmpfs:, PATH[:OPTIONS] with
// Docker's options size=SIZE, mode=OCTAL, ro and rw.
func tmpfsMount(entry string) (*berthv1.Mount, error) {
	target, opts, _ := strings.Cut(entry, ":")
	m := &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_TMPFS, Target: target}
	for _, opt := range strings.Split(opts, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(opt), "=")
		switch key {
		case "", "rw":
		case "ro":
			m.ReadOnly = true
		case "size":
			var size types.UnitBytes
			if err := size.DecodeMapstructure(value); err != nil || size < 0 {
				return nil, fmt.Errorf("%q: size %q is not a size; give it like size=64m", entry, value)
			}
			m.TmpfsSize = int64(size)
		case "mode":
			mode, err := strconv.ParseUint(value, 8, 32)
			if err != nil || mode > 0o7777 {
				return nil, fmt.Errorf("%q: mode %q is not a file mode; give permission bits in octal, like mode=1777", entry, value)
			}
			m.TmpfsMode = uint32(mode)
		default:
			return nil, fmt.Errorf("%q: option %q is not supported; use size=, mode=, ro or rw", entry, key)
		}
	}
	return m, nil
}

// mountFieldRE finds the fields of mounts that a problem's reason names.
var mountFieldRE = regexp.MustCompile(`volumes\[\d+\][a-z_.]*`)

// mountProblem rewrites the fields of mounts in a problem, by their index
// among the spec's mounts, to their Compose fields (mountField).
func mountProblem(fe validation.FieldError, fields []string) validation.FieldError {
	fe.Field = mountField(fe.Field, fields)
	fe.Reason = mountFieldRE.ReplaceAllStringFunc(fe.Reason, func(f string) string { return mountField(f, fields) })
	return fe
}

// mountField rewrites a problem's field that starts with volumes[N],
// where N counts the spec's mounts, to the Compose field of mount N.
func mountField(field string, fields []string) string {
	rest, ok := strings.CutPrefix(field, "volumes[")
	if !ok {
		return field
	}
	idx, rest, ok := strings.Cut(rest, "]")
	n, err := strconv.Atoi(idx)
	if !ok || err != nil || n < 0 || n >= len(fields) {
		return field
	}
	if strings.HasPrefix(fields[n], "tmpfs[") {
		// A tmpfs: entry is one string: its parts are not fields.
		return fields[n]
	}
	return fields[n] + rest
}
